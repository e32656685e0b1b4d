using System.Globalization;
using System.Text.Json;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Ledger;
using ComputeGrid.Ledger.Audit;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Chain;

/// <summary>
/// Each ledger checkpoint to <c>StateRootAnchor</c>: op number, root, the log's chain head and the total liabilities per
/// asset. A checkpoint is recorded in the outbox (<see cref="BridgeStore"/>) when it is seen, then anchored, one
/// transaction per anchor. When the chain lags behind the checkpoints only the latest pending one is sent, and the
/// older ones are recorded as covered by it (none is skipped silently). After a crash, a checkpoint the chain already
/// holds (the same root at its op) is recorded as anchored without a second transaction.
/// </summary>
public sealed class AnchorOutbox(ChainConnection chain, LedgerEngine ledger, BridgeStore store, ILogger<AnchorOutbox>? log = null)
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>
    /// Records <paramref name="checkpoint"/> to be anchored (once per op). A checkpoint of a ledger that owes nothing in
    /// any asset (a new server's system accounts only) proves nothing to anyone: it is not anchored, and costs no gas.
    /// </summary>
    public void Record(Checkpoint checkpoint)
    {
        if (checkpoint.Assets.All(a => a.Credits == "0")) return;
        // A liability is what the ledger owes in an asset: the sum of posted credits (equal to the sum of debits).
        var liabilities = checkpoint.Assets.Select(a => new AnchoredLiability(a.Asset, checked((long)Int128.Parse(a.Credits, CultureInfo.InvariantCulture)))).ToArray();
        store.InsertAnchor(checkpoint.Op, checkpoint.Root, checkpoint.ChainHead, JsonSerializer.Serialize(liabilities.Select(l => new[] { l.AssetCode, l.Amount })));
    }

    /// <summary>Records the ledger's latest checkpoint if there is a new one, then anchors the latest pending; returns the op anchored, or null.</summary>
    public async Task<ulong?> AnchorAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Every checkpoint is recorded as it is taken (LedgerEngine.CheckpointTaken); the latest also here, for one
            // taken before this outbox subscribed.
            if (ledger.LatestCheckpoint is { } cp) Record(cp);
            IReadOnlyList<AnchorRow> pending = store.PendingAnchors();
            if (pending.Count == 0) return null;
            AnchorRow latest = pending[^1];
            string root = "0x" + latest.Root;
            // The chain may hold it already (anchored before a crash, or a later op: op numbers only increase there).
            AnchoredRoot? onChain = await chain.Anchor.LatestAsync().ConfigureAwait(false);
            if (onChain is not null && onChain.OpNumber >= latest.Op)
            {
                string? there = await chain.Anchor.RootAtAsync(latest.Op).ConfigureAwait(false);
                if (string.Equals(there, root, StringComparison.OrdinalIgnoreCase))
                {
                    store.SetAnchored(latest.Op, "(found on chain)", -1);
                    return latest.Op;
                }
                throw new InvalidOperationException($"The anchor holds op {onChain.OpNumber} at or after checkpoint op {latest.Op} with another root: this data folder and the chain disagree.");
            }
            var liabilities = JsonSerializer.Deserialize<long[][]>(latest.Liabilities)!.Select(p => new AnchoredLiability(checked((uint)p[0]), p[1])).ToArray();
            ChainReceipt receipt = await chain.Anchor.AnchorAsync(latest.Op, root, "0x" + latest.ChainHead, liabilities).ConfigureAwait(false);
            store.SetAnchored(latest.Op, receipt.TransactionHash, receipt.BlockNumber);
            log?.LogInformation("Anchored checkpoint op {Op} root {Root} in {Tx} ({Skipped} older pending checkpoint(s) covered by it)", latest.Op, latest.Root, receipt.TransactionHash, pending.Count - 1);
            return latest.Op;
        }
        finally { _gate.Release(); }
    }
}
