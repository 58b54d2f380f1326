namespace PolicyCompiler.Benchmarks.Decisions;

/// <summary>The decision benchmarks' cases; <see cref="DecisionScenario.For"/> says what each one calls.</summary>
public enum DecisionCase
{
    /// <summary>bench.json <c>list_k8s_resources</c>: exact name, no rules, no limits (the 20 ns / 0 B budget).</summary>
    ExactAllow,

    /// <summary>eks.json <c>list_k8s_resources</c>: exact name, plus the <c>*</c> layer's session limit (one counter reserved and committed).</summary>
    ExactAllowEks,

    /// <summary>bench.json <c>describe_cluster</c>: selected by the pattern <c>describe_*</c>.</summary>
    GlobMatch,

    /// <summary>eks.json <c>manage_k8s_resource</c> read of a Deployment: three rules tested, the third allows; two counters (one keyed by cluster).</summary>
    ConditionPass,

    /// <summary>eks.json <c>manage_k8s_resource</c> in <c>kube-system</c>: the second rule (<c>in</c> list) denies.</summary>
    ConditionFail,

    /// <summary>bench.json <c>deploy_stack</c>: a NonBacktracking regex on <c>args.cluster_name</c> allows.</summary>
    RegexPass,

    /// <summary>eks.json <c>get_pod_logs</c> with its log-read limit full: rate limited, nothing reserved.</summary>
    RateLimited,

    /// <summary>eks.json, a tool it does not name: the <c>*</c> layer has no rules, the default denies it (<c>/default</c>).</summary>
    UnknownTool,

    /// <summary>wide-500.json <c>update_trail</c>: the last of the 73 names of the most common length (worst case of the name switch).</summary>
    Wide500Lookup,
}
