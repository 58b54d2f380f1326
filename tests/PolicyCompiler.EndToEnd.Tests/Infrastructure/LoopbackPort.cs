using System.Net;
using System.Net.Sockets;

namespace PolicyCompiler.EndToEnd.Tests.Infrastructure;

/// <summary>Ports for gateways the tests start with <c>--listen</c>.</summary>
internal static class LoopbackPort
{
    /// <summary>A port on 127.0.0.1 that was free a moment ago.</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
