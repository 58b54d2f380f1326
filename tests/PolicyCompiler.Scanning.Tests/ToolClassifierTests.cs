using PolicyCompiler.Scanning.Classification;

namespace PolicyCompiler.Scanning.Tests;

public sealed class ToolClassifierTests
{
    private static ToolClassification Classify(string name, string? description = null, ToolHints? hints = null) =>
        ToolClassifier.Classify(name, description, hints ?? ToolHints.None);

    [Theory]
    [InlineData("delete_cache", true, null, ToolClass.Read, "readOnlyHint=true")]
    [InlineData("get_status", false, true, ToolClass.Destructive, "readOnlyHint=false, destructiveHint=true")]
    [InlineData("remove_everything", false, false, ToolClass.Write, "readOnlyHint=false, destructiveHint=false")]
    [InlineData("list_things", null, true, ToolClass.Destructive, "destructiveHint=true")]
    public void Annotations_BeatTheName(string name, bool? readOnly, bool? destructive, ToolClass expected, string evidence)
    {
        ToolClassification c = Classify(name, "Deletes all the data.", new ToolHints(readOnly, destructive, null, null));

        Assert.Equal(expected, c.Class);
        Assert.Equal(ClassificationSignal.Annotations, c.Signal);
        Assert.Equal(evidence, c.Evidence);
    }

    [Fact]
    public void ReadOnlyHint_Wins_OverDestructiveHint_AsMcpSays()
    {
        // MCP: destructiveHint is meaningful only when readOnlyHint is false.
        ToolClassification c = Classify("x", null, new ToolHints(true, true, null, null));

        Assert.Equal(ToolClass.Read, c.Class);
    }

    [Fact]
    public void IdempotentAndOpenWorldHints_AreNotes_NotClasses()
    {
        ToolClassification c = Classify("fetch_url", null, new ToolHints(true, null, true, true));

        Assert.Equal(ToolClass.Read, c.Class);
        Assert.Equal("idempotent, open world", c.Notes);
    }

    [Fact]
    public void TheName_BeatsTheDescription()
    {
        ToolClassification c = Classify("get_report", "Deletes the report after reading it.");

        Assert.Equal(ToolClass.Read, c.Class);
        Assert.Equal(ClassificationSignal.Name, c.Signal);
        Assert.Equal("verb 'get' in the name", c.Evidence);
    }

    [Theory]
    [InlineData("delete_file", "delete", ToolClass.Destructive)]          // snake_case
    [InlineData("get-pod-logs", "get", ToolClass.Read)]                   // kebab-case
    [InlineData("createIssue", "create", ToolClass.Write)]                // camelCase
    [InlineData("TerminateInstances", "terminate", ToolClass.Destructive)] // PascalCase
    [InlineData("DescribeClusters", "describe", ToolClass.Read)]
    [InlineData("PutBucketPolicy", "put", ToolClass.Write)]
    [InlineData("DROP_TABLE", "drop", ToolClass.Destructive)]             // SCREAMING_SNAKE
    [InlineData("fs.read", "read", ToolClass.Read)]                       // dotted
    [InlineData("HTTPGetRequest", "get", ToolClass.Read)]                 // acronym then verb
    [InlineData("s3DeleteObject", "delete", ToolClass.Destructive)]       // digits
    [InlineData("github_search_code", "search", ToolClass.Read)]          // prefixed: the riskiest verb anywhere
    [InlineData("k8s_remove_pod", "remove", ToolClass.Destructive)]
    [InlineData("SetDesiredCapacity", "set", ToolClass.Write)]
    [InlineData("edit_file", "edit", ToolClass.Write)]
    [InlineData("write_file", "write", ToolClass.Write)]
    [InlineData("add_observations", "add", ToolClass.Write)]
    [InlineData("update_issue", "update", ToolClass.Write)]
    [InlineData("destroy_stack", "destroy", ToolClass.Destructive)]
    [InlineData("list_k8s_resources", "list", ToolClass.Read)]
    public void TheNamesVerb_Decides_InEveryNamingStyle(string name, string verb, ToolClass expected)
    {
        ToolClassification c = Classify(name);

        Assert.Equal(expected, c.Class);
        Assert.Equal(ClassificationSignal.Name, c.Signal);
        Assert.Equal($"verb '{verb}' in the name", c.Evidence);
    }

    [Fact]
    public void ALeadingVerb_Decides_EvenWhenARiskierWordFollows()
    {
        // "get_delete_markers" reads the markers; it deletes nothing.
        Assert.Equal(ToolClass.Read, Classify("get_delete_markers").Class);
        // Without a leading verb the riskiest one counts.
        Assert.Equal(ToolClass.Destructive, Classify("bucket_get_or_delete").Class);
    }

    [Theory]
    [InlineData("manage_eks_stacks", "Manage EKS CloudFormation stacks (generate, deploy, describe, delete).", ToolClass.Destructive, "delete")]
    [InlineData("directory_tree", "Returns a recursive tree view of files.", ToolClass.Read, "returns")]
    [InlineData("gzip", "Compresses a file and writes the result to a new file.", ToolClass.Write, "writes")]
    [InlineData("cleanup", "Removes temporary files.", ToolClass.Destructive, "removes")]
    [InlineData("notes", "Reads the notes. Deleted notes are skipped.", ToolClass.Read, "reads")] // first sentence only
    public void TheDescriptionsVerb_Decides_WhenTheNameHasNone(string name, string description, ToolClass expected, string verb)
    {
        ToolClassification c = Classify(name, description);

        Assert.Equal(expected, c.Class);
        Assert.Equal(ClassificationSignal.Description, c.Signal);
        Assert.Equal($"verb '{verb}' in the description", c.Evidence);
    }

    [Fact]
    public void NounsThatLookLikeVerbs_DoNotCount_InsideADescription()
    {
        // "a set of", "a list of": nouns, not verbs, unless they lead the sentence.
        ToolClassification c = Classify("widgets", "Widgets: a set of tools and a list of clear options.");

        Assert.Equal(ClassificationSignal.Default, c.Signal);
    }

    [Fact]
    public void NothingRecognisable_IsDestructive_ByTheMcpDefaults()
    {
        ToolClassification c = Classify("frobnicate", "Frobnicates the widget.");

        Assert.Equal(ToolClass.Destructive, c.Class);
        Assert.Equal(ClassificationSignal.Default, c.Signal);
    }

    [Fact]
    public void ALoneReadOnlyFalse_RulesOutRead_AndTheNameChoosesAmongTheRest()
    {
        var hints = new ToolHints(false, null, null, null);

        ToolClassification create = Classify("create_user", null, hints);
        Assert.Equal((ToolClass.Write, ClassificationSignal.Name), (create.Class, create.Signal));
        Assert.Contains("readOnlyHint=false", create.Evidence, StringComparison.Ordinal);

        // A read verb cannot overrule the annotation; MCP presumes destructiveHint=true.
        ToolClassification get = Classify("get_user", "Gets a user.", hints);
        Assert.Equal((ToolClass.Destructive, ClassificationSignal.Annotations), (get.Class, get.Signal));
    }

    [Fact]
    public void ALoneDestructiveFalse_RulesOutDestructive()
    {
        var hints = new ToolHints(null, false, null, null);

        Assert.Equal(ToolClass.Read, Classify("list_users", null, hints).Class);
        // The name's "delete" is ruled out, the description has no verb left: MCP presumes readOnlyHint=false.
        ToolClassification delete = Classify("delete_user", "Marks a user as deleted.", hints);
        Assert.Equal((ToolClass.Write, ClassificationSignal.Annotations), (delete.Class, delete.Signal));
        ToolClassification archive = Classify("archive_user", "Updates a user's flags; deleted users stay.", hints);
        Assert.Equal((ToolClass.Write, ClassificationSignal.Description), (archive.Class, archive.Signal));
        Assert.Equal(ToolClass.Write, Classify("frobnicate", null, hints).Class);
    }

    [Theory]
    [InlineData("getPodLogs", new[] { "get", "pod", "logs" })]
    [InlineData("DeleteCluster", new[] { "delete", "cluster" })]
    [InlineData("delete_file", new[] { "delete", "file" })]
    [InlineData("get-env", new[] { "get", "env" })]
    [InlineData("HTTPServerStart", new[] { "http", "server", "start" })]
    [InlineData("s3Bucket2Get", new[] { "s", "3", "bucket", "2", "get" })]
    [InlineData("a.b c/d", new[] { "a", "b", "c", "d" })]
    [InlineData("__x__", new[] { "x" })]
    public void SplitWords_HandlesEveryStyle(string text, string[] expected)
    {
        Assert.Equal(expected, ToolClassifier.SplitWords(text));
    }
}
