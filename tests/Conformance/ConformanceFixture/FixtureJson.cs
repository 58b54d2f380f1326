using System.Text.Json.Serialization;

namespace PolicyCompiler.Conformance.Fixture;

/// <summary>Source-generated serialization for the few values the fixture serializes itself.</summary>
[JsonSerializable(typeof(string))]
internal sealed partial class FixtureJson : JsonSerializerContext;
