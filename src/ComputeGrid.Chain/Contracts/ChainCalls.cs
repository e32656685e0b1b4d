using System.Numerics;
using Nethereum.ABI.FunctionEncoding;
using Nethereum.Contracts;
using Nethereum.Hex.HexConvertors.Extensions;
using Nethereum.JsonRpc.Client;
using Nethereum.RPC.Eth.DTOs;
using Nethereum.Web3;

namespace ComputeGrid.Chain.Contracts;

/// <summary>A mined transaction: its hash, block and gas used.</summary>
/// <param name="TransactionHash">0x-prefixed hash.</param>
/// <param name="BlockNumber">The block that holds it.</param>
/// <param name="GasUsed">Gas the transaction used in all (21,000 base included).</param>
public sealed record ChainReceipt(string TransactionHash, long BlockNumber, long GasUsed);

/// <summary>A contract call the chain refused (a <c>require</c> failed); <see cref="Reason"/> is the contract's message.</summary>
public sealed class ChainRevertException(string function, string reason, Exception inner)
    : Exception($"{function} reverted: {reason}", inner)
{
    /// <summary>The revert reason the contract gave (e.g. "authorization expired").</summary>
    public string Reason { get; } = reason;
}

/// <summary>The plumbing the contract clients share: send-and-wait with reverts mapped, amounts and bytes32 converted.</summary>
internal static class ChainCalls
{
    private const string RevertedPrefix = "execution reverted: ";

    /// <summary>How long a send waits for its receipt: a transaction never mined is an error, not a hang.</summary>
    public static readonly TimeSpan ReceiptTimeout = TimeSpan.FromSeconds(60);

    public static async Task<ChainReceipt> SendAsync<TMessage>(IWeb3 web3, string contract, TMessage message)
        where TMessage : FunctionMessage, new()
    {
        string function = typeof(TMessage).Name;
        TransactionReceipt receipt;
        using var timeout = new CancellationTokenSource(ReceiptTimeout);
        try
        {
            receipt = await web3.Eth.GetContractTransactionHandler<TMessage>()
                .SendRequestAndWaitForReceiptAsync(contract, message, timeout).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (timeout.IsCancellationRequested)
        {
            throw new TimeoutException($"{function} was not mined within {ReceiptTimeout.TotalSeconds} s", e);
        }
        catch (SmartContractRevertException e)
        {
            throw new ChainRevertException(function, e.RevertMessage ?? e.Message, e);
        }
        catch (RpcResponseException e) when (e.RpcError?.Message?.Contains("revert", StringComparison.Ordinal) == true)
        {
            string text = e.RpcError.Message;
            int at = text.IndexOf(RevertedPrefix, StringComparison.Ordinal);
            throw new ChainRevertException(function, at >= 0 ? text[(at + RevertedPrefix.Length)..] : text, e);
        }
        // A transaction mined but failed (sent with an explicit gas limit, so nothing refused it up front).
        if (receipt.Status?.Value != BigInteger.One)
            throw new ChainRevertException(function, $"status {receipt.Status?.Value} in transaction {receipt.TransactionHash}", new InvalidOperationException(receipt.TransactionHash));
        return new ChainReceipt(receipt.TransactionHash, (long)receipt.BlockNumber.Value, (long)receipt.GasUsed.Value);
    }

    /// <summary>The <c>Deposited</c> logs of <paramref name="contract"/> (the vault or a share token) in blocks <paramref name="fromBlock"/>..<paramref name="toBlock"/>, in chain order.</summary>
    internal static async Task<IReadOnlyList<ChainDeposit>> DepositsAsync(IWeb3 web3, string contract, long fromBlock, long toBlock)
    {
        var evt = web3.Eth.GetEvent<DepositedEvent>(contract);
        var filter = evt.CreateFilterInput(new BlockParameter((ulong)fromBlock), new BlockParameter((ulong)toBlock));
        var logs = await evt.GetAllChangesAsync(filter).ConfigureAwait(false);
        return logs
            .Select(l => new ChainDeposit(l.Log.TransactionHash, (long)l.Log.LogIndex.Value, (long)l.Log.BlockNumber.Value, l.Log.BlockHash,
                l.Event.Depositor, Hex(l.Event.Account), ToMicro(l.Event.Amount)))
            .OrderBy(d => d.BlockNumber).ThenBy(d => d.LogIndex)
            .ToList();
    }

    public static Task<TOut> QueryAsync<TMessage, TOut>(IWeb3 web3, string contract, TMessage message)
        where TMessage : FunctionMessage, new() =>
        web3.Eth.GetContractQueryHandler<TMessage>().QueryAsync<TOut>(contract, message);

    public static Task<TOut> QueryObjectAsync<TMessage, TOut>(IWeb3 web3, string contract, TMessage message)
        where TMessage : FunctionMessage, new()
        where TOut : Nethereum.ABI.FunctionEncoding.Attributes.IFunctionOutputDTO, new() =>
        web3.Eth.GetContractQueryHandler<TMessage>().QueryDeserializingToObjectAsync<TOut>(message, contract);

    /// <summary>Micro-units from the chain as a long; a value no ledger amount can hold is an error, not a wrap.</summary>
    public static long ToMicro(BigInteger value) =>
        value >= 0 && value <= long.MaxValue ? (long)value : throw new OverflowException($"{value} does not fit a long amount");

    public static BigInteger FromMicro(long value, string name) =>
        value >= 0 ? new BigInteger(value) : throw new ArgumentOutOfRangeException(name, value, "an amount is not negative");

    public static byte[] Bytes32(string hex, string name)
    {
        byte[] bytes = hex.HexToByteArray();
        return bytes.Length == 32 ? bytes : throw new ArgumentException($"{name} must be 32 bytes of hex, got {bytes.Length}", name);
    }

    public static string Hex(byte[] bytes) => bytes.ToHex(prefix: true);

    public static (byte V, byte[] R, byte[] S) SplitSignature(string signature)
    {
        byte[] sig = signature.HexToByteArray();
        if (sig.Length != 65) throw new ArgumentException($"a signature is 65 bytes, got {sig.Length}", nameof(signature));
        return (sig[64], sig[..32], sig[32..64]);
    }
}
