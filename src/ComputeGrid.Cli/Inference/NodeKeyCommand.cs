using System.CommandLine;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Inference.Routing;

namespace ComputeGrid.Cli.Inference;

/// <summary>
/// <c>computegrid node-key --key-file F [--region R]</c>: makes (or reads) a node's Ed25519 key and prints what an
/// operator needs to admit the node: its public key (base64) and, with <c>--region</c>, the node id it would take
/// without <c>--id</c>.
/// </summary>
internal static class NodeKeyCommand
{
    public static Command Create()
    {
        var keyFile = new Option<string>("--key-file") { Description = "The node's private key file (raw 32 bytes), created (mode 0600) if missing.", Required = true };
        var region = new Option<string?>("--region") { Description = "The node's region, to print its default id." };
        var command = new Command("node-key", "Make or read a node's key and print its public key (base64) for admission.") { keyFile, region };
        command.SetAction(pr =>
        {
            // The region is checked before the key file is made: bad input is one line on stderr, and nothing done.
            string? nodeRegion = null;
            if (pr.GetValue(region) is { } r)
            {
                var latency = LatencyMatrix.LoadDefault();
                if (!latency.TryGetRegion(r, out int index)) return CliDefaults.Fail($"unknown region '{r}'; the regions are: {string.Join(", ", latency.Regions)}");
                nodeRegion = latency.Regions[index];
            }
            var (_, publicKey, created, warning) = NodeAgent.LoadOrCreateKey(pr.GetValue(keyFile));
            if (created) Console.Error.WriteLine($"created {pr.GetValue(keyFile)} (Ed25519, owner-only)");
            if (warning is not null) Console.Error.WriteLine(warning);
            Console.Out.WriteLine($"public_key: {Convert.ToBase64String(publicKey)}");
            if (nodeRegion is not null) Console.Out.WriteLine($"node_id: {NodeAgent.DefaultNodeId(nodeRegion, publicKey)}");
            return 0;
        });
        return command;
    }
}
