// A built gateway: the command line of PolicyCompiler.Gateway around the evaluator that the
// source generator compiled from this build's policy file (-p:PolicyFile=...).
return await PolicyCompiler.Gateway.Hosting.GatewayCommandLine.RunAsync(
    args,
    PolicyCompiler.Generated.CompiledPolicy.Create,
    PolicyCompiler.Generated.CompiledPolicy.Info);
