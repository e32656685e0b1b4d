using System.Numerics;
using ComputeGrid.Chain.Contracts;
using Nethereum.Hex.HexTypes;
using Nethereum.RPC.Eth.DTOs;
using Nethereum.Web3;

namespace ComputeGrid.Chain.Bridge;

/// <summary>A vault withdrawal found on chain: the transaction that paid it and the block that holds it.</summary>
/// <param name="TransactionHash">0x-prefixed hash.</param>
/// <param name="BlockNumber">The block that holds it.</param>
/// <param name="BlockHash">That block's hash.</param>
/// <param name="To">Who was paid.</param>
/// <param name="Amount">Micro-units paid.</param>
public sealed record ChainWithdrawal(string TransactionHash, long BlockNumber, string BlockHash, string To, long Amount);

/// <summary>
/// The chain reads the bridge needs beyond the typed clients: the head, a block's hash (to tell a log still in the
/// canonical chain from one a reorg replaced), and the <c>Withdrawn</c> log of one withdrawal id (to learn, after a
/// crash, whether and where a withdrawal was paid).
/// </summary>
public static class ChainReads
{
    /// <summary>The number of the latest block.</summary>
    public static async Task<long> HeadAsync(IWeb3 web3) =>
        (long)(await web3.Eth.Blocks.GetBlockNumber.SendRequestAsync().ConfigureAwait(false)).Value;

    /// <summary>The hash of canonical block <paramref name="number"/>, or null when the chain is not that long.</summary>
    public static async Task<string?> BlockHashAsync(IWeb3 web3, long number)
    {
        BlockWithTransactionHashes? block = await web3.Eth.Blocks.GetBlockWithTransactionsHashesByNumber
            .SendRequestAsync(new HexBigInteger(new BigInteger(number))).ConfigureAwait(false);
        return block?.BlockHash;
    }

    /// <summary>
    /// The <c>Withdrawn</c> log of <paramref name="withdrawalId"/> in the canonical chain from block <paramref name="fromBlock"/> on,
    /// or null when it is not there (never paid, or reorganised away). The logs are matched here rather than by a topic
    /// filter, so the answer does not depend on how a client encodes an indexed bytes32.
    /// </summary>
    public static async Task<ChainWithdrawal?> FindWithdrawalAsync(IWeb3 web3, string vault, string withdrawalId, long fromBlock = 0)
    {
        byte[] id = ChainCalls.Bytes32(withdrawalId, nameof(withdrawalId));
        var evt = web3.Eth.GetEvent<WithdrawnEvent>(vault);
        NewFilterInput filter = evt.CreateFilterInput(new BlockParameter((ulong)Math.Max(0, fromBlock)), BlockParameter.CreateLatest());
        var logs = await evt.GetAllChangesAsync(filter).ConfigureAwait(false);
        // The vault pays an id once, so there is at most one such log.
        foreach (var l in logs)
            if (l.Event.WithdrawalId.AsSpan().SequenceEqual(id))
                return new ChainWithdrawal(l.Log.TransactionHash, (long)l.Log.BlockNumber.Value, l.Log.BlockHash, l.Event.To, ChainCalls.ToMicro(l.Event.Amount));
        return null;
    }
}
