using System.Numerics;
using Nethereum.Web3;
using static ComputeGrid.Chain.Contracts.ChainCalls;

namespace ComputeGrid.Chain.Contracts;

/// <summary>Total liabilities of one asset at a checkpoint, as anchored: packed on chain as (code &lt;&lt; 128) | amount.</summary>
/// <param name="AssetCode">The ledger's asset code.</param>
/// <param name="Amount">Minor units of that asset.</param>
public readonly record struct AnchoredLiability(uint AssetCode, long Amount)
{
    internal BigInteger Packed() => (new BigInteger(AssetCode) << 128) | FromMicro(Amount, nameof(Amount));
}

/// <summary>A root read back from the anchor.</summary>
/// <param name="OpNumber">The ledger op number of the checkpoint.</param>
/// <param name="Root">The Merkle-sum root, bytes32 hex.</param>
public sealed record AnchoredRoot(ulong OpNumber, string Root);

/// <summary>The calls made on <c>StateRootAnchor</c>: the operator anchors, anyone reads.</summary>
public sealed class AnchorClient(IWeb3 web3, string address)
{
    /// <summary>The contract address.</summary>
    public string Address { get; } = address;

    /// <summary>Anchors a checkpoint; op numbers must increase.</summary>
    public Task<ChainReceipt> AnchorAsync(ulong opNumber, string root, string logHead, IReadOnlyList<AnchoredLiability> liabilities) =>
        SendAsync(web3, Address, new AnchorFunction
        {
            OpNumber = opNumber,
            Root = Bytes32(root, nameof(root)),
            LogHead = Bytes32(logHead, nameof(logHead)),
            Liabilities = liabilities.Select(l => l.Packed()).ToList(),
        });

    /// <summary>The latest anchored root, or null when nothing was anchored.</summary>
    public async Task<AnchoredRoot?> LatestAsync()
    {
        LatestOutput latest = await QueryObjectAsync<LatestFunction, LatestOutput>(web3, Address, new()).ConfigureAwait(false);
        return latest.Root.All(b => b == 0) ? null : new AnchoredRoot(latest.OpNumber, Hex(latest.Root));
    }

    /// <summary>The root anchored at <paramref name="opNumber"/>, or null.</summary>
    public async Task<string?> RootAtAsync(ulong opNumber)
    {
        byte[] root = await QueryAsync<RootAtFunction, byte[]>(web3, Address, new() { OpNumber = opNumber }).ConfigureAwait(false);
        return root.All(b => b == 0) ? null : Hex(root);
    }
}
