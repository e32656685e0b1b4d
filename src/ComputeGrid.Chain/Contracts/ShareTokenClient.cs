using System.Numerics;
using Nethereum.RPC.Eth.DTOs;
using Nethereum.Web3;
using static ComputeGrid.Chain.Contracts.ChainCalls;

namespace ComputeGrid.Chain.Contracts;

/// <summary>
/// The calls made on one node's <c>NodeShareToken</c>: the operator mints (shares withdrawn from the ledger) and
/// distributes revenue; holders transfer, deposit back (burn) and claim. Dividends are micro-USD.
/// </summary>
public sealed class ShareTokenClient(IWeb3 web3, string address)
{
    /// <summary>The contract address.</summary>
    public string Address { get; } = address;

    /// <summary>Mints <paramref name="shares"/> to <paramref name="to"/>, once per <paramref name="mintId"/> (operator only).</summary>
    public Task<ChainReceipt> MintAsync(string to, long shares, string mintId) =>
        SendAsync(web3, Address, new ShareMintFunction { To = to, Shares = FromMicro(shares, nameof(shares)), MintId = Bytes32(mintId, nameof(mintId)) });

    /// <summary>Burns the sender's <paramref name="shares"/> to credit ledger account <paramref name="account"/>.</summary>
    public Task<ChainReceipt> DepositAsync(long shares, string account) =>
        SendAsync(web3, Address, new DepositFunction { Amount = FromMicro(shares, nameof(shares)), Account = Bytes32(account, nameof(account)) });

    /// <summary>Transfers the sender's shares.</summary>
    public Task<ChainReceipt> TransferAsync(string to, long shares) =>
        SendAsync(web3, Address, new TransferFunction { To = to, Value = FromMicro(shares, nameof(shares)) });

    /// <summary>
    /// Brings the token's R up to <paramref name="revenueTotal"/>, the node's revenue so far (micro-USD), and pulls the
    /// on-chain holders' part from the operator (operator only, needs its allowance). A total, not an increment: sent
    /// again (or at or below R) it mines and changes nothing.
    /// </summary>
    public Task<ChainReceipt> DistributeAsync(long revenueTotal) =>
        SendAsync(web3, Address, new DistributeFunction { RevenueTotal = FromMicro(revenueTotal, nameof(revenueTotal)) });

    /// <summary>Pays the sender what it is owed.</summary>
    public Task<ChainReceipt> ClaimAsync() => SendAsync(web3, Address, new ClaimFunction());

    /// <summary>Shares held by <paramref name="holder"/>.</summary>
    public async Task<long> BalanceOfAsync(string holder) =>
        ToMicro(await QueryAsync<BalanceOfFunction, BigInteger>(web3, Address, new() { Account = holder }).ConfigureAwait(false));

    /// <summary>Shares on chain.</summary>
    public async Task<long> TotalSupplyAsync() =>
        ToMicro(await QueryAsync<TotalSupplyFunction, BigInteger>(web3, Address, new()).ConfigureAwait(false));

    /// <summary>What <paramref name="holder"/> may claim now (micro-USD).</summary>
    public async Task<long> WithdrawableDividendOfAsync(string holder) =>
        ToMicro(await QueryAsync<WithdrawableDividendOfFunction, BigInteger>(web3, Address, new() { Holder = holder }).ConfigureAwait(false));

    /// <summary><paramref name="holder"/>'s entitlement in all, claimed or not (micro-USD).</summary>
    public async Task<long> AccumulativeDividendOfAsync(string holder) =>
        ToMicro(await QueryAsync<AccumulativeDividendOfFunction, BigInteger>(web3, Address, new() { Holder = holder }).ConfigureAwait(false));

    /// <summary>Stablecoin pulled from the operator for on-chain holders in all.</summary>
    public async Task<long> PulledAsync() =>
        ToMicro(await QueryAsync<PulledFunction, BigInteger>(web3, Address, new()).ConfigureAwait(false));

    /// <summary>R: the node revenue distributed so far.</summary>
    public async Task<long> RevenueAsync() =>
        ToMicro(await QueryAsync<RevenueFunction, BigInteger>(web3, Address, new()).ConfigureAwait(false));

    /// <summary>
    /// R as it stood at log <paramref name="logIndex"/> of block <paramref name="blockNumber"/> (a burn's R): R after the
    /// block before, raised by any <c>Distributed</c> earlier in the same block.
    /// </summary>
    public async Task<long> RevenueAtAsync(long blockNumber, long logIndex)
    {
        BigInteger r = blockNumber == 0 ? 0 : await web3.Eth.GetContractQueryHandler<RevenueFunction>()
            .QueryAsync<BigInteger>(Address, new RevenueFunction(), new BlockParameter((ulong)(blockNumber - 1))).ConfigureAwait(false);
        var evt = web3.Eth.GetEvent<ShareDistributedEvent>(Address);
        var block = new BlockParameter((ulong)blockNumber);
        foreach (var l in await evt.GetAllChangesAsync(evt.CreateFilterInput(block, block)).ConfigureAwait(false))
            if ((long)l.Log.LogIndex.Value < logIndex && l.Event.RevenueTotal > r) r = l.Event.RevenueTotal;
        return ToMicro(r);
    }

    /// <summary>True when <paramref name="mintId"/> was minted (in the chain as it is now: a reorg can take a mint back).</summary>
    public Task<bool> MintedAsync(string mintId) =>
        QueryAsync<MintedFunction, bool>(web3, Address, new() { MintId = Bytes32(mintId, nameof(mintId)) });

    /// <summary>Shares deposited back to the ledger in blocks <paramref name="fromBlock"/>..<paramref name="toBlock"/>.</summary>
    public Task<IReadOnlyList<ChainDeposit>> GetDepositsAsync(long fromBlock, long toBlock) => DepositsAsync(web3, Address, fromBlock, toBlock);
}
