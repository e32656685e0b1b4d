using System.Reflection;

namespace ComputeGrid.Chain;

/// <summary>One compiled contract: its ABI (JSON) and creation bytecode (hex, no 0x).</summary>
/// <param name="Name">The contract's name in Solidity.</param>
/// <param name="Abi">The ABI as JSON text.</param>
/// <param name="Bytecode">The creation bytecode as hex without a 0x prefix.</param>
public sealed record ContractArtifact(string Name, string Abi, string Bytecode);

/// <summary>
/// The committed artifacts of <c>contracts/build</c> (written by <c>tools/chain/compile.mjs</c>), embedded in this
/// assembly as resources. A test compiles the sources afresh and compares, so these are the sources' truth.
/// </summary>
public static class ContractArtifacts
{
    /// <summary>The deployable contracts, in the order compile.mjs lists them.</summary>
    public static readonly IReadOnlyList<string> Names = ["NodeShareToken", "StateRootAnchor", "TestUSDC", "Vault"];

    /// <summary>The test stablecoin.</summary>
    public static ContractArtifact TestUsdc => Load("TestUSDC");

    /// <summary>The deposit and withdrawal vault.</summary>
    public static ContractArtifact Vault => Load("Vault");

    /// <summary>A node's share token.</summary>
    public static ContractArtifact NodeShareToken => Load("NodeShareToken");

    /// <summary>The checkpoint root anchor.</summary>
    public static ContractArtifact StateRootAnchor => Load("StateRootAnchor");

    /// <summary>Loads the artifact named <paramref name="name"/>; throws when it is not embedded.</summary>
    public static ContractArtifact Load(string name) =>
        new(name, ReadResource($"{name}.abi.json"), ReadResource($"{name}.bin").Trim());

    private static string ReadResource(string file)
    {
        Assembly assembly = typeof(ContractArtifacts).Assembly;
        using Stream stream = assembly.GetManifestResourceStream($"ComputeGrid.Chain.Contracts.{file}")
            ?? throw new InvalidOperationException($"contract artifact {file} is not embedded: run tools/chain/compile.mjs and rebuild");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
