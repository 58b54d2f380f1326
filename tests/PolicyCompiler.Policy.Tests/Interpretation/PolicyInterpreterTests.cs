using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using static PolicyCompiler.Policy.Runtime.DecisionKind;
using static PolicyCompiler.Policy.Tests.Interpretation.InterpreterHarness;

namespace PolicyCompiler.Policy.Tests.Interpretation;

public class PolicyInterpreterTests
{
    private const string Seed = """
        { "version": "1", "default": "deny",
          "tools": { "CreateCodeConnection": { "limits": [
            { "counter": "createcodeconnection_rate", "window": "minute", "max": 30, "scope": "grant" } ] } } }
        """;

    [Fact]
    public void Seed_allows_30_a_minute_per_grant_and_denies_everything_else()
    {
        var h = new InterpreterHarness(Seed, singleQuotes: false);
        for (int i = 0; i < 30; i++)
        {
            AssertDecision(h.Call("CreateCodeConnection"), Allow, "/tools/CreateCodeConnection");
            h.Clock.Advance(TimeSpan.FromSeconds(1));
        }
        var limited = h.Call("CreateCodeConnection");
        AssertDecision(limited, RateLimited, "/tools/CreateCodeConnection/limits/0");
        Assert.Equal("createcodeconnection_rate", limited.Counter);
        Assert.Equal(TimeSpan.FromSeconds(30), limited.RetryAfter);
        Assert.False(string.IsNullOrEmpty(limited.Reason));
        AssertDecision(h.Call("CreateCodeConnection", grant: "other"), Allow, "/tools/CreateCodeConnection");

        var denied = h.Call("DeleteCluster");
        AssertDecision(denied, Deny, "/default");
        Assert.Equal(PolicyText.DefaultDenyReason, denied.Reason);

        h.Clock.Advance(TimeSpan.FromSeconds(30));
        AssertDecision(h.Call("CreateCodeConnection"), Allow, "/tools/CreateCodeConnection");
    }

    [Fact]
    public void Hidden_tools_are_denied_with_the_hide_pointer()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'default': 'allow', 'hide': ['Internal', '*Secret*'],
              'tools': { 'GetSecretValue': { }, 'Debug': { 'hide': true } } }
            """);
        var hidden = h.Call("GetSecretValue");
        AssertDecision(hidden, Deny, "/hide/1");
        Assert.Equal(PolicyText.HiddenReason, hidden.Reason);
        AssertDecision(h.Call("Internal"), Deny, "/hide/0");
        AssertDecision(h.Call("Debug"), Deny, "/tools/Debug/hide");
        AssertDecision(h.Call("Other"), Allow, "/default");
        Assert.False(h.IsListed("GetSecretValue"));
        Assert.False(h.IsListed("Debug"));
        Assert.True(h.IsListed("Other"));
    }

    [Fact]
    public void Exact_name_beats_pattern_and_more_specific_patterns_win()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'default_reason': 'not named',
              'tools': {
                'Delete*': { 'action': 'approve' },
                'DeleteC*': { 'action': 'deny', 'reason': 'clusters' },
                'Delete?luster': { 'action': 'allow' },
                'DeleteCluster': { },
                'Get*': { },
                '?et*': { 'action': 'deny' } } }
            """);
        AssertDecision(h.Call("DeleteCluster"), Allow, "/tools/DeleteCluster");
        // 'Delete?luster' has 12 literals, 'DeleteC*' 7: more literal characters win.
        AssertDecision(h.Call("DeleteXluster"), Allow, "/tools/Delete?luster/action");
        AssertDecision(h.Call("DeleteCapacity"), Deny, "/tools/DeleteC*/action");
        AssertDecision(h.Call("DeleteNodegroup"), ApprovalRequired, "/tools/Delete*/action");
        AssertDecision(h.Call("GetPods"), Allow, "/tools/Get*");
        AssertDecision(h.Call("SetPods"), Deny, "/tools/?et*/action");
        var unnamed = h.Call("ListThings");
        AssertDecision(unnamed, Deny, "/default");
        Assert.Equal("not named", unnamed.Reason);
    }

    [Fact]
    public void Equally_specific_patterns_fall_back_to_fewer_wildcards_then_ordinal_order()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': {
                'a*c': { 'action': 'deny', 'reason': 'one star' },
                'a**c': { 'action': 'deny', 'reason': 'two stars' },
                'x*': { 'action': 'deny', 'reason': 'x' },
                '*y': { 'action': 'deny', 'reason': 'y' } } }
            """);
        Assert.Equal("one star", h.Call("abc").Reason);
        // '*y' < 'x*' ordinally ('*' is 0x2A).
        Assert.Equal("y", h.Call("xy").Reason);
    }

    [Fact]
    public void The_star_layer_adds_its_rules_first_and_its_limits_to_every_tool()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'default': 'allow',
              'tools': {
                '*': {
                  'rules': [ { 'when': { 'args.namespace': { 'eq': 'kube-system' } }, 'action': 'deny', 'reason': 'kube-system is off limits' } ],
                  'limits': [ { 'counter': 'all_calls', 'window': 'minute', 'max': 3 } ] },
                'ListPods': { 'rules': [ { 'action': 'allow' } ] },
                'GetPod': { } } }
            """);
        var denied = h.Call("ListPods", "{'namespace':'kube-system'}");
        AssertDecision(denied, Deny, "/tools/*/rules/0");
        Assert.Equal("kube-system is off limits", denied.Reason);
        AssertDecision(h.Call("ListPods", "{'namespace':'default'}"), Allow, "/tools/ListPods/rules/0");
        AssertDecision(h.Call("GetPod"), Allow, "/tools/GetPod");
        // A tool no entry matches is decided by the default, with the layer's rules and limits.
        AssertDecision(h.Call("Unlisted", "{'namespace':'kube-system'}"), Deny, "/tools/*/rules/0");
        AssertDecision(h.Call("Unlisted"), Allow, "/default");
        var limited = h.Call("Unlisted");
        AssertDecision(limited, RateLimited, "/tools/*/limits/0");
        Assert.Equal("all_calls", limited.Counter);
        AssertDecision(h.Call("GetPod"), RateLimited, "/tools/*/limits/0");
    }

    [Fact]
    public void The_star_entry_is_never_selected_so_default_deny_stays_deny()
    {
        // The trap PC0105 used to warn about: rules on '*' in a deny-by-default policy once made '*'
        // the selected entry (action allow) for every unnamed tool.
        var h = new InterpreterHarness("""
            { 'version': '1', 'default': 'deny', 'default_reason': 'not in the allow-list',
              'tools': {
                '*': { 'rules': [ { 'when': { 'args.ns': { 'eq': 'kube-system' } }, 'action': 'deny' } ],
                       'limits': [ { 'counter': 'all', 'window': 'minute', 'max': 100 } ] },
                'Get': { } } }
            """);
        var unnamed = h.Call("Delete", "{'ns':'default'}");
        AssertDecision(unnamed, Deny, "/default");
        Assert.Equal("not in the allow-list", unnamed.Reason);
        Assert.Equal(0, h.Store.GetCount("all", "g1", null, h.Clock.GetUtcNow()));
        Assert.False(h.IsListed("Delete"));
        // A layer rule without a reason shows the layer's text, not an entry's.
        var layerDeny = h.Call("Delete", "{'ns':'kube-system'}");
        AssertDecision(layerDeny, Deny, "/tools/*/rules/0");
        Assert.Equal(PolicyText.LayerDenyReason, layerDeny.Reason);
        AssertDecision(h.Call("Get"), Allow, "/tools/Get");
        Assert.Equal(1, h.Store.GetCount("all", "g1", null, h.Clock.GetUtcNow()));
        // '*' names no tool: a call to a tool literally named '*' is a tool no entry matches.
        AssertDecision(h.Call("*"), Deny, "/default");
    }

    [Fact]
    public void The_layer_example_of_the_docs_decides_as_its_table_says()
    {
        // docs/policy-language.md, "The * layer".
        const string policy = """
            { 'version': '1', 'default': 'deny', 'default_reason': 'tool is not in the allow-list',
              'tools': {
                '*': {
                  'rules': [ { 'when': { 'args.owner': { 'not_in': ['acme'] } }, 'action': 'deny', 'reason': 'only acme repositories' } ],
                  'limits': [ { 'counter': 'all_calls', 'window': 'hour', 'max': 1000 } ]
                },
                'get_*': {},
                'merge_pull_request': { 'action': 'approve', 'reason': 'merges need a human' } } }
            """;
        var h = new InterpreterHarness(policy);
        AssertDecision(h.Call("get_issue", "{'owner':'acme'}"), Allow, "/tools/get_*");
        Assert.Equal(1, h.Store.GetCount("all_calls", "g1", null, h.Clock.GetUtcNow()));
        var evil = h.Call("get_issue", "{'owner':'evil'}");
        AssertDecision(evil, Deny, "/tools/*/rules/0");
        Assert.Equal("only acme repositories", evil.Reason);
        AssertDecision(h.Call("merge_pull_request", "{'owner':'acme'}"), ApprovalRequired, "/tools/merge_pull_request/action");
        AssertDecision(h.Reserve("merge_pull_request", "{'owner':'acme'}"), Allow, "/tools/merge_pull_request/action");
        var fork = h.Call("fork_repository", "{'owner':'acme'}");
        AssertDecision(fork, Deny, "/default");
        Assert.Equal("tool is not in the allow-list", fork.Reason);
        AssertDecision(h.Call("fork_repository", "{'owner':'evil'}"), Deny, "/tools/*/rules/0");

        var allowing = new InterpreterHarness(policy.Replace("'default': 'deny'", "'default': 'allow'"));
        AssertDecision(allowing.Call("fork_repository", "{'owner':'acme'}"), Allow, "/default");
        Assert.Equal(1, allowing.Store.GetCount("all_calls", "g1", null, allowing.Clock.GetUtcNow()));
    }

    [Fact]
    public void Layer_rules_can_let_unnamed_tools_through_with_the_layer_limits()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'default': 'deny',
              'tools': {
                '*': { 'rules': [
                         { 'when': { 'grant': { 'eq': 'admin' } }, 'action': 'allow' },
                         { 'when': { 'tool': { 'prefix': 'delete_' } }, 'action': 'approve' } ],
                       'limits': [ { 'counter': 'all', 'window': 'minute', 'max': 1 } ] },
                'delete_repo': { 'action': 'deny', 'reason': 'never' } } }
            """);
        AssertDecision(h.Call("anything", grant: "admin"), Allow, "/tools/*/rules/0");
        AssertDecision(h.Call("anything", grant: "admin"), RateLimited, "/tools/*/limits/0");
        var approval = h.Call("delete_branch");
        AssertDecision(approval, ApprovalRequired, "/tools/*/rules/1");
        Assert.Equal(PolicyText.LayerApproveReason, approval.Reason);
        // The layer's approve rule runs before the entry's deny action.
        AssertDecision(h.Call("delete_repo"), ApprovalRequired, "/tools/*/rules/1");
        // An approved call reserves the layer's limits under the rule that asked for approval.
        AssertDecision(h.Reserve("delete_branch", grant: "g2"), Allow, "/tools/*/rules/1");
        AssertDecision(h.Reserve("delete_branch", grant: "g2"), RateLimited, "/tools/*/limits/0");
        AssertDecision(h.Call("anything"), Deny, "/default");
        // Listed: a conditional allow or approve rule of '*' could let any tool through.
        Assert.True(h.IsListed("anything"));
        Assert.True(h.IsListed("delete_repo"));
    }

    [Fact]
    public void Other_wildcard_patterns_are_ordinary_entries_chosen_by_specificity()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'default': 'deny',
              'tools': {
                '*': { 'rules': [ { 'when': { 'args.x': { 'eq': 1 } }, 'action': 'deny', 'reason': 'layer' } ] },
                '**': { 'action': 'approve', 'reason': 'anything else needs a human' },
                'Delete*': { 'action': 'deny', 'reason': 'deletes' },
                '*Cluster': { } } }
            """);
        AssertDecision(h.Call("DeleteNodegroup"), Deny, "/tools/Delete*/action");
        // '*Cluster' has 7 literal characters, 'Delete*' 6.
        AssertDecision(h.Call("DeleteCluster"), Allow, "/tools/*Cluster");
        AssertDecision(h.Call("Other"), ApprovalRequired, "/tools/**/action");
        AssertDecision(h.Call("Other", "{'x':1}"), Deny, "/tools/*/rules/0");
    }

    [Fact]
    public void IsListed_for_unnamed_tools_walks_the_layer_rules_then_the_default()
    {
        static bool Listed(string policy) => new InterpreterHarness(policy).IsListed("Unnamed");
        Assert.False(Listed("{ 'version': '1', 'tools': { '*': { 'rules': [ { 'when': { 'args.x': { 'eq': 1 } }, 'action': 'deny' } ] } } }"));
        Assert.True(Listed("{ 'version': '1', 'tools': { '*': { 'rules': [ { 'when': { 'args.x': { 'eq': 1 } }, 'action': 'approve' } ] } } }"));
        Assert.True(Listed("{ 'version': '1', 'default': 'allow', 'tools': { '*': { 'limits': [ { 'counter': 'c', 'window': 60, 'max': 1 } ] } } }"));
        Assert.False(Listed("{ 'version': '1', 'default': 'allow', 'tools': { '*': { 'rules': [ { 'action': 'deny' } ] } } }"));
        Assert.False(Listed("{ 'version': '1', 'default': 'allow', 'hide': [ 'Unnamed' ], 'tools': { '*': { 'rules': [ { 'action': 'allow' } ] } } }"));
    }

    [Fact]
    public void First_matching_rule_wins_and_rule_reasons_fall_back_to_the_entry()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': { 'Write': {
                'reason': 'writes are restricted',
                'rules': [
                  { 'when': { 'args.path': { 'prefix': '/etc/' } }, 'action': 'deny' },
                  { 'when': { 'args.path': { 'prefix': '/data/' } }, 'action': 'allow' },
                  { 'when': { 'args.path': { 'prefix': '/' } }, 'action': 'approve', 'reason': 'outside /data' } ],
                'action': 'deny' } } }
            """);
        var etc = h.Call("Write", "{'path':'/etc/passwd'}");
        AssertDecision(etc, Deny, "/tools/Write/rules/0");
        Assert.Equal("writes are restricted", etc.Reason);
        AssertDecision(h.Call("Write", "{'path':'/data/x'}"), Allow, "/tools/Write/rules/1");
        var approval = h.Call("Write", "{'path':'/home/x'}");
        AssertDecision(approval, ApprovalRequired, "/tools/Write/rules/2");
        Assert.Equal("outside /data", approval.Reason);
        AssertDecision(h.Call("Write", "{'path':'relative'}"), Deny, "/tools/Write/action");
    }

    [Fact]
    public void Rules_fail_closed_on_values_of_the_wrong_type_and_duplicated_keys()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': { 'Scale': { 'rules': [
                { 'when': { 'args.replicas': { 'gt': 100 } }, 'action': 'deny', 'reason': 'too many' },
                { 'when': { 'args.replicas': { 'lte': 10 } }, 'action': 'allow' } ],
                'action': 'approve' } } }
            """);
        AssertDecision(h.Call("Scale", "{'replicas': 1000}"), Deny, "/tools/Scale/rules/0");
        // A string instead of a number cannot slip past the deny rule...
        AssertDecision(h.Call("Scale", "{'replicas': '1000'}"), Deny, "/tools/Scale/rules/0");
        // ...nor a duplicated key, whichever copy the server reads.
        AssertDecision(h.Call("Scale", "{'replicas': 1, 'replicas': 1000}"), Deny, "/tools/Scale/rules/0");
        AssertDecision(h.Call("Scale", "{'replicas': 5}"), Allow, "/tools/Scale/rules/1");
        // Missing: the deny rule does not fire, the allow rule does not either.
        AssertDecision(h.Call("Scale", "{}"), ApprovalRequired, "/tools/Scale/action");
        AssertDecision(h.Call("Scale", "{'replicas': 50}"), ApprovalRequired, "/tools/Scale/action");
    }

    [Fact]
    public void All_any_not_combine_in_kleene_logic()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': { 'T': { 'rules': [
                { 'when': { 'all': [ { 'args.a': { 'eq': 1 } }, { 'not': { 'args.b': { 'in': ['x', 'y'] } } } ] }, 'action': 'allow' },
                { 'when': { 'any': [ { 'args.c': { 'regex': '^ok$' } }, { 'grant': { 'glob': 'admin-*' } } ] }, 'action': 'allow' } ],
                'action': 'deny' } } }
            """);
        AssertDecision(h.Call("T", "{'a':1,'b':'z'}"), Allow, "/tools/T/rules/0");
        AssertDecision(h.Call("T", "{'a':1,'b':'x'}"), Deny, "/tools/T/action");
        AssertDecision(h.Call("T", "{'a':1,'b':'x','c':'ok'}"), Allow, "/tools/T/rules/1");
        AssertDecision(h.Call("T", "{'c':5}", grant: "admin-1"), Allow, "/tools/T/rules/1");
        // c is a number: regex is Unknown; Unknown OR False is Unknown, so the allow rule does not fire.
        AssertDecision(h.Call("T", "{'c':5}"), Deny, "/tools/T/action");
    }

    [Fact]
    public void Default_allow_decides_unmatched_tools()
    {
        var h = new InterpreterHarness("{ 'version': '1', 'default': 'allow' }");
        AssertDecision(h.Call("Anything"), Allow, "/default");
        Assert.True(h.IsListed("Anything"));
    }

    [Fact]
    public void Approval_reserves_nothing_until_ReserveLimits()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': { 'Deploy': { 'action': 'approve',
                'limits': [ { 'counter': 'deploys', 'window': 'hour', 'max': 1 } ] } } }
            """);
        AssertDecision(h.Call("Deploy"), ApprovalRequired, "/tools/Deploy/action");
        AssertDecision(h.Call("Deploy"), ApprovalRequired, "/tools/Deploy/action");
        var reserved = h.Reserve("Deploy");
        AssertDecision(reserved, Allow, "/tools/Deploy/action");
        Assert.False(reserved.Reservation.IsEmpty);
        reserved.Reservation.Commit();
        AssertDecision(h.Reserve("Deploy"), RateLimited, "/tools/Deploy/limits/0");
        // A denied call stays denied through ReserveLimits.
        AssertDecision(h.Reserve("Other"), Deny, "/default");
    }

    [Fact]
    public void Every_scope_keeps_its_own_count()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': {
                'G': { 'limits': [ { 'counter': 'g', 'window': 60, 'max': 1, 'scope': 'grant' } ] },
                'S': { 'limits': [ { 'counter': 's', 'window': 60, 'max': 1, 'scope': 'session' } ] },
                'A': { 'limits': [ { 'counter': 'a', 'window': 60, 'max': 1, 'scope': 'global' } ] } } }
            """);
        Assert.Equal(Allow, h.Call("G", grant: "x", session: "1").Kind);
        Assert.Equal(RateLimited, h.Call("G", grant: "x", session: "2").Kind);
        Assert.Equal(Allow, h.Call("G", grant: "y", session: "1").Kind);

        Assert.Equal(Allow, h.Call("S", grant: "x", session: "1").Kind);
        Assert.Equal(RateLimited, h.Call("S", grant: "y", session: "1").Kind);
        Assert.Equal(Allow, h.Call("S", grant: "x", session: "2").Kind);

        Assert.Equal(Allow, h.Call("A", grant: "x", session: "1").Kind);
        Assert.Equal(RateLimited, h.Call("A", grant: "y", session: "2").Kind);
    }

    [Fact]
    public void Keyed_limits_count_per_argument_value()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': { 'Push': { 'limits': [
                { 'counter': 'pushes', 'window': 'minute', 'max': 1, 'key': 'args.repo' } ] } } }
            """);
        Assert.Equal(Allow, h.Call("Push", "{'repo':'a'}").Kind);
        Assert.Equal(RateLimited, h.Call("Push", "{'repo':'a'}").Kind);
        // Escapes decode: the same repository.
        Assert.Equal(RateLimited, h.Call("Push", """{"repo":"\u0061"}""", singleQuotes: false).Kind);
        Assert.Equal(Allow, h.Call("Push", "{'repo':'b'}").Kind);
        // Numbers count under their text; missing under the empty key.
        Assert.Equal(Allow, h.Call("Push", "{'repo':1}").Kind);
        Assert.Equal(Allow, h.Call("Push", "{}").Kind);
        Assert.Equal(RateLimited, h.Call("Push").Kind);
        Assert.Equal(1, h.Store.GetCount("pushes", "g1", "a", h.Clock.GetUtcNow()));
    }

    [Fact]
    public void Increment_from_spends_the_argument_and_fails_closed_on_anything_else()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': { 'Buy': { 'limits': [
                { 'counter': 'spend', 'window': 'day', 'max': 100, 'increment_from': 'args.cost' } ] } } }
            """);
        Assert.Equal(Allow, h.Call("Buy", "{'cost': 60}").Kind);
        Assert.Equal(Allow, h.Call("Buy", "{'cost': 0}").Kind);
        var over = h.Call("Buy", "{'cost': 41}");
        AssertDecision(over, RateLimited, "/tools/Buy/limits/0");
        Assert.Equal(TimeSpan.FromDays(1), over.RetryAfter);
        Assert.Equal(TimeSpan.MaxValue, h.Call("Buy", "{'cost': 101}").RetryAfter);
        Assert.Equal(Allow, h.Call("Buy", "{'cost': 40}").Kind);
        foreach (var bad in new[] { "{'cost': -1}", "{'cost': '5'}", "{}", "{'cost': 1, 'cost': 1}", "{'cost': null}" })
        {
            var denied = h.Call("Buy", bad);
            AssertDecision(denied, Deny, "/tools/Buy/limits/0");
            Assert.Contains("args.cost", denied.Reason);
        }
    }

    [Fact]
    public void A_counter_named_in_two_tools_is_shared()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': {
                'CreateA': { 'limits': [ { 'counter': 'creates', 'window': 'minute', 'max': 2 } ] },
                'CreateB': { 'limits': [ { 'counter': 'creates', 'window': 'minute', 'max': 2 } ] } } }
            """);
        Assert.Equal(Allow, h.Call("CreateA").Kind);
        Assert.Equal(Allow, h.Call("CreateB").Kind);
        Assert.Equal(RateLimited, h.Call("CreateA").Kind);
        Assert.Equal(RateLimited, h.Call("CreateB").Kind);
    }

    [Fact]
    public void Limits_are_all_or_nothing_and_rollback_refunds()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'default': 'allow', 'tools': {
                '*': { 'limits': [ { 'counter': 'total', 'window': 'minute', 'max': 10 } ] },
                'T': { 'limits': [ { 'counter': 'per_tool', 'window': 'minute', 'max': 1 } ] } } }
            """);
        Assert.Equal(Allow, h.Call("T").Kind);
        var limited = h.Call("T");
        AssertDecision(limited, RateLimited, "/tools/T/limits/0");
        Assert.Equal(1, h.Store.GetCount("total", "g1", null, h.Clock.GetUtcNow()));

        var d = h.Interpreter.Evaluate(new ToolCall("U"u8, default, "g1", "s1"));
        Assert.Equal(2, h.Store.GetCount("total", "g1", null, h.Clock.GetUtcNow()));
        d.Reservation.Rollback();
        Assert.Equal(1, h.Store.GetCount("total", "g1", null, h.Clock.GetUtcNow()));
    }

    [Fact]
    public void A_thousand_parallel_calls_against_max_100_admit_exactly_100()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': { 'T': { 'limits': [ { 'counter': 'c', 'window': 'minute', 'max': 100, 'scope': 'global' } ] } } }
            """);
        int admitted = 0;
        Parallel.For(0, 1000, i =>
        {
            var decision = h.Interpreter.Evaluate(new ToolCall("T"u8, "{}"u8, "g" + (i % 10), "s"));
            if (decision.Kind == Allow) Interlocked.Increment(ref admitted);
            decision.Reservation.Commit();
        });
        Assert.Equal(100, admitted);
    }

    [Fact]
    public void IsListed_hides_tools_every_call_would_deny()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': {
                'Open': { },
                'Closed': { 'action': 'deny' },
                'Sometimes': { 'action': 'deny', 'rules': [ { 'when': { 'args.x': { 'eq': 1 } }, 'action': 'allow' } ] },
                'Blocked': { 'rules': [ { 'action': 'deny' }, { 'action': 'allow' } ] },
                'Asks': { 'action': 'approve' } } }
            """);
        Assert.True(h.IsListed("Open"));
        Assert.False(h.IsListed("Closed"));
        Assert.True(h.IsListed("Sometimes"));
        Assert.False(h.IsListed("Blocked"));
        Assert.True(h.IsListed("Asks"));
        Assert.False(h.IsListed("Unknown"));
    }

    [Fact]
    public void Explain_traces_the_steps_and_leaves_counters_untouched()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': {
                'Delete*': { 'action': 'approve' },
                '*': { 'rules': [ { 'when': { 'args.ns': { 'eq': 'kube-system' } }, 'action': 'deny' } ] },
                'Scale': { 'limits': [ { 'counter': 'c', 'window': 'minute', 'max': 1 } ] } } }
            """);
        var explained = h.Explain("Scale", "{'ns':'default'}");
        AssertDecision(explained.Decision, Allow, "/tools/Scale");
        string trace = string.Join("\n", explained.Trace);
        Assert.Contains("/tools/Scale: entry names the tool exactly", trace);
        Assert.Contains("/tools/*/rules/0: deny rule: condition false", trace);
        Assert.Contains("args.ns eq \"kube-system\": value \"default\" → false", trace);
        Assert.Contains("counter 'c'", trace);
        Assert.Equal(0, h.Store.GetCount("c", "g1", null, h.Clock.GetUtcNow()));
        AssertDecision(h.Call("Scale"), Allow, "/tools/Scale");

        var pattern = h.Explain("DeleteCluster");
        AssertDecision(pattern.Decision, ApprovalRequired, "/tools/Delete*/action");
        Assert.Contains(pattern.Trace, s => s.ToString() == "/tools/Delete*: pattern 'Delete*' matches the tool");
        Assert.Contains(pattern.Trace, s => s.ToString() == "/tools/*: the '*' layer adds its rules (first) and limits");

        var unnamed = string.Join("\n", h.Explain("Other", "{'ns':'default'}").Trace);
        Assert.Contains("no entry matches the tool", unnamed);
        Assert.Contains("/tools/*/rules/0: deny rule: condition false", unnamed);
        Assert.EndsWith("/default: no rule fired; default is deny", unnamed);
    }

    [Fact]
    public void An_admitted_call_allocates_nothing_in_steady_state()
    {
        var h = new InterpreterHarness("""
            { 'version': '1', 'tools': { 'T': {
                'rules': [ { 'when': { 'args.path': { 'prefix': '/etc/' } }, 'action': 'deny' },
                           { 'when': { 'all': [ { 'args.path': { 'glob': '/data/*' } }, { 'args.n': { 'lte': 10 } } ] }, 'action': 'allow' } ],
                'action': 'deny',
                'limits': [ { 'counter': 'c', 'window': 1, 'max': 1000000, 'scope': 'session' } ] } } }
            """);
        byte[] args = "{\"path\":\"/data/x\",\"n\":3}"u8.ToArray();
        int Run(int count)
        {
            int allowed = 0;
            for (int i = 0; i < count; i++)
            {
                var d = h.Interpreter.Evaluate(new ToolCall("T"u8, args, "g", "s"));
                if (d.Kind == Allow) allowed++;
                d.Reservation.Commit();
                h.Clock.Advance(TimeSpan.FromMilliseconds(1));
            }
            return allowed;
        }
        Assert.Equal(3000, Run(3000));
        long before = GC.GetAllocatedBytesForCurrentThread();
        int admitted = Run(1000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(1000, admitted);
        Assert.Equal(0, allocated);
    }
}
