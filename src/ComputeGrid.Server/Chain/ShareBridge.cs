using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Chain.Bridge;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Tokens;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Chain;

/// <summary>Why a share withdrawal request was not taken.</summary>
public enum ShareWithdrawalOutcome
{
    /// <summary>Taken (or the same request again): the row says where it stands.</summary>
    Accepted,
    /// <summary>The Idempotency-Key was used before for another node, number of shares or address.</summary>
    KeyReused,
    /// <summary>The caller's free shares of the node are fewer: nothing moved.</summary>
    InsufficientShares,
}

/// <summary>
/// Node share tokens on chain, exactly once. The on-chain supply of a node is held in the exchange (the register of
/// record) and the ledger by one custody holder, <see cref="CustodyHolder"/>, a reserved principal id nobody can log in
/// as or name in a transfer.
/// <para>Withdraw: a row is recorded (id from the principal and its Idempotency-Key), the holder's free shares move to
/// the custody holder (an exchange command, which settles both sides' entitlements first), then the token (deployed on
/// the node's first withdrawal) mints them to the address once per mintId (the row id); a mint a reorg dropped is sent
/// again, one the token refuses for good moves the shares back. Deposit: the token's <c>Deposited</c> logs are read
/// after the confirmations, recorded by (token, tx hash, log index), and each moves its shares from the custody holder
/// to the named account's principal once.</para>
/// <para>Exactly once without ids in the exchange: every custody move runs under one gate, one at a time, is marked
/// pending in the store before it is sent and recorded (with the count of what custody holds and the ledger's R it was
/// applied at) after. A pending move found at the next move of the node is resolved by reading the exchange: custody at
/// the count plus the move means applied before a crash (record it), at the count means not (forget it); anything else
/// breaks the invariant and throws. See ShareBridge.Custody.cs.</para>
/// <para>Revenue (the ordering rule): the token's R (node revenue distributed) only ever catches up with the ledger's
/// pool revenue, never passes it, and it catches up right before every mint (and at every pass). So a share earns on
/// chain over an interval of R inside the interval it earns for the custody holder in the ledger: minted at R ≥ the
/// ledger's R when it moved to custody, burned on chain before the ledger moves it out (at a ledger R ≥ the chain's).
/// Hence Σ on-chain n_h ≤ the custody holder's n in the ledger, and what <c>distribute</c> pulls (floor(Σ n_h / S)) never
/// exceeds the custody holder's ledger entitlement: each pass claims exactly the token's <c>pulled</c> total for the
/// custody holder and pays it out of <see cref="AccountCode.ChainCustody"/> (the server's stablecoin the token pulled).
/// The custody holder's other owed revenue is the revenue of shares in transit (between the ledger move and the mint,
/// between the burn and the ledger move): it is claimed too and paid to the withdrawer (the depositor) once, so what stays
/// owed is rounding: ledger entitlements + on-chain entitlements + both carries + transit paid + that remainder = the
/// node's revenue, to the micro-unit.</para>
/// </summary>
public sealed partial class ShareBridge(ChainConnection chain, LedgerEngine ledger, ExchangeHost exchange, ShareRevenue revenue, BridgeStore store, BridgeOptions options,
    Trust.TrustStore trust, TimeProvider time, ILogger<ShareBridge>? log = null)
{
    /// <summary>The custody holder: the principal id that holds every node's on-chain supply in the exchange and the ledger (never issued to anyone).</summary>
    public const ulong CustodyHolder = ChartOfAccounts.QualifierMax;

    /// <summary>The custody holder's USD account: its claims land here and leave at once for <see cref="AccountCode.ChainCustody"/>.</summary>
    public static readonly UInt128 CustodyBalance = ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, CustodyHolder);

    private static readonly UInt128 ServerStablecoin = ChartOfAccounts.SystemAccount(AccountCode.ChainCustody, Asset.Usd);

    // One at a time: every custody move, mint and distribute (the exactly-once check and the ordering rule both rely on it).
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>
    /// Takes a withdrawal of <paramref name="shares"/> of <paramref name="node"/> from <paramref name="principal"/>'s free
    /// shares to <paramref name="to"/>: recorded, then moved to the custody holder, before this returns. The same key again
    /// returns the same withdrawal.
    /// </summary>
    public async Task<(ShareWithdrawalOutcome Outcome, ShareWithdrawalRow Row)> RequestAsync(ulong principal, long node, long shares, string to, string idempotencyKey, CancellationToken ct = default)
    {
        string id = ShareBridgeIds.Withdrawal(principal, idempotencyKey);
        long now = Now();
        ShareWithdrawalRow row = store.InsertShareWithdrawal(new ShareWithdrawalRow(id, principal, node, to, shares, idempotencyKey, ShareWithdrawalState.New, null, null, 0, null, now, now));
        if (row.Node != node || row.Shares != shares || !string.Equals(row.To, to, StringComparison.OrdinalIgnoreCase)) return (ShareWithdrawalOutcome.KeyReused, row);
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try { row = await MoveInAsync(store.ShareWithdrawal(id)!, ct).ConfigureAwait(false); }
        finally { _gate.Release(); }
        return (row.State == ShareWithdrawalState.Refused ? ShareWithdrawalOutcome.InsufficientShares : ShareWithdrawalOutcome.Accepted, row);
    }

    /// <summary>One pass over the open share withdrawals: move, mint, confirm, each as far as it can go now. Returns how many became final.</summary>
    public async Task<int> ProcessAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            int finished = 0;
            foreach (ShareWithdrawalRow open in store.OpenShareWithdrawals())
            {
                ShareWithdrawalRow row = open;
                try
                {
                    row = await MoveInAsync(row, ct).ConfigureAwait(false);
                    if (row.State == ShareWithdrawalState.Moved) row = await MintAsync(row, ct).ConfigureAwait(false);
                    if (row.State == ShareWithdrawalState.Sent) row = await ConfirmAsync(row).ConfigureAwait(false);
                    if (row.State is ShareWithdrawalState.Minted or ShareWithdrawalState.Failed or ShareWithdrawalState.Refused) finished++;
                }
                catch (Exception e) when (IsChainUnavailable(e))
                {
                    store.SetShareWithdrawal(row.Id, row.State, row.State, row.TransactionHash, row.BlockNumber, e.Message, Now(), attempt: true);
                    log?.LogWarning("Share withdrawal {Id}: the chain did not answer ({Reason}); retried next pass", row.Id, e.Message);
                }
            }
            return finished;
        }
        finally { _gate.Release(); }
    }

    /// <summary>
    /// Reads every token's <c>Deposited</c> logs that have their confirmations and moves each deposit's shares from the
    /// custody holder to the principal it names, once. Returns the shares credited to principals in this pass.
    /// </summary>
    public async Task<long> PollDepositsAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            long credited = 0;
            foreach ((long node, string token) in store.ShareTokens())
            {
                await ReadDepositsAsync(node, token, ct).ConfigureAwait(false);
                foreach (ShareDepositRow row in store.NewShareDeposits(node))
                {
                    if (row.Holder == 0)
                    {
                        // It names no customer's or provider's account: the shares stay with the custody holder, on record.
                        store.SetShareDeposit(row, "suspense");
                        log?.LogWarning("Share deposit {Tx}#{Index} of {Shares} names {Account}, no holder: kept by the custody holder", row.TransactionHash, row.LogIndex, row.Shares, row.Account);
                        continue;
                    }
                    // The shares stopped earning on chain at the burn; in the ledger they earn for custody until this move.
                    string source = ShareBridgeIds.Deposit(row);
                    store.OpenTransit(source, node, row.Holder, row.Shares);
                    long burnedAt = await chain.ShareToken(token).RevenueAtAsync(row.BlockNumber, row.LogIndex).ConfigureAwait(false);
                    CustodyMove? moved = await MoveOnceAsync(node, source, (long)CustodyHolder, (long)row.Holder, row.Shares, -row.Shares, ct).ConfigureAwait(false);
                    if (moved is null)
                        throw new InvalidOperationException($"The exchange refused to move {row.Shares} shares of node {node} out of custody for deposit {row.TransactionHash}#{row.LogIndex}.");
                    store.CloseTransit(source, burnedAt, moved.Revenue, await SupplyAsync(node, ct).ConfigureAwait(false));
                    store.SetShareDeposit(row, "credited");
                    credited += row.Shares;
                }
                await SettleCustodyAsync(node, chain.ShareToken(token), ct).ConfigureAwait(false);
            }
            return credited;
        }
        finally { _gate.Release(); }
    }

    /// <summary>Brings every token's revenue up to its node's ledger revenue and claims what the tokens pulled (see the class's ordering rule).</summary>
    public async Task DistributeAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            foreach ((long node, string token) in store.ShareTokens()) await SyncRevenueAsync(node, token, ct).ConfigureAwait(false);
        }
        finally { _gate.Release(); }
    }

    // ---- withdrawal steps (under the gate)

    private async Task<ShareWithdrawalRow> MoveInAsync(ShareWithdrawalRow row, CancellationToken ct)
    {
        if (row.State != ShareWithdrawalState.New) return row;
        // The token is deployed by the pass that mints, so a request needs no chain; the custody count needs its row now.
        store.InsertShareNode(row.Node);
        bool moved = await MoveOnceAsync(row.Node, row.Id, (long)row.Principal, (long)CustodyHolder, row.Shares, row.Shares, ct).ConfigureAwait(false) is not null;
        // The shares earn for custody in the ledger from this move until the mint: that revenue is the withdrawer's.
        if (moved) store.OpenTransit(row.Id, row.Node, row.Principal, row.Shares);
        store.SetShareWithdrawal(row.Id, ShareWithdrawalState.New, moved ? ShareWithdrawalState.Moved : ShareWithdrawalState.Refused, null, null,
            moved ? null : "too few free shares", Now());
        return store.ShareWithdrawal(row.Id)!;
    }

    private async Task<ShareWithdrawalRow> MintAsync(ShareWithdrawalRow row, CancellationToken ct)
    {
        string token = await EnsureTokenAsync(row.Node, ct).ConfigureAwait(false);
        ShareTokenClient client = chain.ShareToken(token);
        // Minted before a crash at the R planned then: record it without a sync that would move the planned R.
        if (store.Transit(row.Id)?.RevenueTo is not null && await client.MintedAsync(row.Id).ConfigureAwait(false))
        {
            long at = await ChainReads.HeadAsync(chain.Web3).ConfigureAwait(false);
            store.SetShareWithdrawal(row.Id, ShareWithdrawalState.Moved, ShareWithdrawalState.Sent, row.TransactionHash, at, null, Now());
            return store.ShareWithdrawal(row.Id)!;
        }
        // The ordering rule: the token's R reaches the ledger's (which is at least the R the shares moved at) before the mint.
        await SyncRevenueAsync(row.Node, token, ct).ConfigureAwait(false);
        // Nothing else distributes while the gate is held, so the token's R now is its R at the mint.
        store.SetTransitEnd(row.Id, await client.RevenueAsync().ConfigureAwait(false));
        try
        {
            ChainReceipt receipt = await client.MintAsync(row.To, row.Shares, row.Id).ConfigureAwait(false);
            store.SetShareWithdrawal(row.Id, ShareWithdrawalState.Moved, ShareWithdrawalState.Sent, receipt.TransactionHash, receipt.BlockNumber, null, Now());
        }
        catch (ChainRevertException e) when (e.Reason.Contains("mint already done", StringComparison.Ordinal))
        {
            // Minted before a crash: it counts its confirmations from now, which is never too early.
            long head = await ChainReads.HeadAsync(chain.Web3).ConfigureAwait(false);
            store.SetShareWithdrawal(row.Id, ShareWithdrawalState.Moved, ShareWithdrawalState.Sent, row.TransactionHash, head, null, Now());
        }
        catch (ChainRevertException e)
        {
            // Refused for good (above the node's supply, a bad address): the shares go back to the holder.
            log?.LogWarning("Share withdrawal {Id}: the token refused the mint ({Reason}); the shares go back", row.Id, e.Reason);
            CustodyMove back = await MoveOnceAsync(row.Node, row.Id + ":back", (long)CustodyHolder, (long)row.Principal, row.Shares, -row.Shares, ct).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"The exchange refused to return share withdrawal {row.Id}'s shares.", e);
            // They never left the ledger's economy: what custody earned on them meanwhile is the withdrawer's.
            await CloseTransitAsync(row.Id, row.Node, back.Revenue, ct).ConfigureAwait(false);
            store.SetShareWithdrawal(row.Id, ShareWithdrawalState.Moved, ShareWithdrawalState.Failed, null, null, e.Reason, Now());
            await SettleCustodyAsync(row.Node, client, ct).ConfigureAwait(false);
        }
        return store.ShareWithdrawal(row.Id)!;
    }

    private async Task<ShareWithdrawalRow> ConfirmAsync(ShareWithdrawalRow row)
    {
        long head = await ChainReads.HeadAsync(chain.Web3).ConfigureAwait(false);
        if (head - row.BlockNumber!.Value + 1 < chain.Confirmations) return row;
        string token = store.ShareToken(row.Node)!;
        bool minted = await chain.ShareToken(token).MintedAsync(row.Id).ConfigureAwait(false);
        // The transit closes at the R planned for the mint, before the row is final (a crash between them closes it again, the same).
        if (minted && store.Transit(row.Id)?.RevenueTo is long mintedAt) await CloseTransitAsync(row.Id, row.Node, mintedAt, CancellationToken.None).ConfigureAwait(false);
        // A mint a reorg dropped is sent again (the mintId makes a second one impossible).
        store.SetShareWithdrawal(row.Id, ShareWithdrawalState.Sent, minted ? ShareWithdrawalState.Minted : ShareWithdrawalState.Moved,
            minted ? row.TransactionHash : null, minted ? row.BlockNumber : null, minted ? null : "mint dropped by a reorg; sent again", Now());
        if (minted) await SettleCustodyAsync(row.Node, chain.ShareToken(token), CancellationToken.None).ConfigureAwait(false);
        return store.ShareWithdrawal(row.Id)!;
    }

    // ---- the token and its revenue (under the gate)

    private async Task<string> EnsureTokenAsync(long node, CancellationToken ct)
    {
        if (store.ShareToken(node) is { } existing) return existing;
        long supply = await exchange.ReadAsync(v => v.ShareNode(node)?.Supply ?? 0, ct).ConfigureAwait(false);
        if (supply == 0) throw new InvalidOperationException($"Node {node} has issued no shares.");
        // A crash between the deployment and its record deploys again at the next pass: the first token was never used.
        string symbol = ComputeGrid.Exchange.Instruments.Instrument.NodeSharesSymbol(node);
        (string address, long deployedAt) = await chain.DeployShareTokenAsync(ShareBridgeIds.NodeBytes32(node), $"ComputeGrid node {node} shares", symbol, supply).ConfigureAwait(false);
        // distribute pulls the on-chain holders' part from the server's account.
        await chain.Stablecoin.ApproveAsync(address, long.MaxValue).ConfigureAwait(false);
        await ledger.CreateAccountsAsync(new[] { ChartOfAccounts.NewAccount(AccountCode.CustomerBalance, CustodyBalance, Asset.Usd) }, ct).ConfigureAwait(false);
        store.InsertShareToken(node, address, deployedAt);
        log?.LogInformation("Node {Node}'s share token deployed at {Address}", node, address);
        return store.ShareToken(node)!;
    }

    private async Task SyncRevenueAsync(long node, string token, CancellationToken ct)
    {
        ShareTokenClient client = chain.ShareToken(token);
        long ledgerRevenue = (await revenue.PoolAsync((ulong)node, ct).ConfigureAwait(false))?.Revenue ?? 0;
        long chainRevenue = await client.RevenueAsync().ConfigureAwait(false);
        if (chainRevenue > ledgerRevenue)
            throw new InvalidOperationException($"Node {node}'s token has distributed {chainRevenue} micro-USD of revenue, the ledger knows {ledgerRevenue}: the token must never lead.");
        if (ledgerRevenue > chainRevenue)
        {
            // Up to a total, not by an amount: the token ignores a total it has reached, so a resend of this transaction
            // (a crash before its receipt, then a pass that sends again while the first is still pending) adds nothing.
            store.InsertShareDistribution(node, ledgerRevenue, ledgerRevenue - chainRevenue, Now());
            ChainReceipt receipt = await client.DistributeAsync(ledgerRevenue).ConfigureAwait(false);
            store.SetShareDistributionSent(node, ledgerRevenue, receipt.TransactionHash);
        }
        await SettleCustodyAsync(node, client, ct).ConfigureAwait(false);
    }

    // ---- deposits (under the gate)

    private async Task ReadDepositsAsync(long node, string token, CancellationToken ct)
    {
        long head = await ChainReads.HeadAsync(chain.Web3).ConfigureAwait(false);
        long from = store.NextBlock(token) ?? options.StartBlock;
        long to = Math.Min(head - chain.Confirmations + 1, checked(from + options.BlocksPerPassMax - 1));
        if (to < from) return;
        IReadOnlyList<ChainDeposit> logs = await chain.ShareToken(token).GetDepositsAsync(from, to).ConfigureAwait(false);
        var canonical = new Dictionary<long, string?>();
        foreach (ChainDeposit d in logs)
        {
            if (!canonical.TryGetValue(d.BlockNumber, out string? hash))
                canonical[d.BlockNumber] = hash = await ChainReads.BlockHashAsync(chain.Web3, d.BlockNumber).ConfigureAwait(false);
            if (!string.Equals(hash, d.BlockHash, StringComparison.OrdinalIgnoreCase))
            {
                to = d.BlockNumber - 1; // no longer canonical: read again next pass
                break;
            }
            ulong holder = await HolderNamedAsync(d.Account, ct).ConfigureAwait(false);
            store.InsertShareDeposit(new ShareDepositRow(token, d.TransactionHash, d.LogIndex, d.BlockNumber, node, d.Account, d.Amount, holder, "new"));
        }
        store.Advance(token, to + 1, []);
    }

    // The principal whose customer balance or provider revenue account the bytes32 names (0: none, or the custody holder).
    private async Task<ulong> HolderNamedAsync(string bytes32, CancellationToken ct)
    {
        if (!BridgeIds.TryAccountFromBytes32(bytes32, out UInt128 account)) return 0;
        Account[] found = await ledger.LookupAccountsAsync(new[] { account }, ct).ConfigureAwait(false);
        if (found.Length == 0 || !BridgeDeposits.CreditableCodes.Contains((AccountCode)found[0].Code)) return 0;
        (AccountOwnership ownership, ulong principal) = ChartOfAccounts.OwnerOf(account);
        return ownership == AccountOwnership.Principal && principal != CustodyHolder ? principal : 0;
    }

    private static bool IsChainUnavailable(Exception e) => e is HttpRequestException or TimeoutException or Nethereum.JsonRpc.Client.RpcClientUnknownException
        or Nethereum.JsonRpc.Client.RpcClientTimeoutException or Nethereum.JsonRpc.Client.RpcResponseException;

    private long Now() => checked(time.GetUtcNow().ToUnixTimeMilliseconds() * 1_000_000);
}

/// <summary>The share bridge's ids, each derived from what caused it: a withdrawal's (its token's mintId) from the principal and its Idempotency-Key.</summary>
public static class ShareBridgeIds
{
    /// <summary>A share withdrawal's id and mintId (bytes32 hex).</summary>
    public static string Withdrawal(ulong principal, string idempotencyKey) =>
        "0x" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"share-withdrawal\n{principal.ToString(CultureInfo.InvariantCulture)}\n{idempotencyKey}")));

    /// <summary>A share deposit's custody move and transit: its token, transaction and log index.</summary>
    public static string Deposit(ShareDepositRow row) =>
        string.Create(CultureInfo.InvariantCulture, $"deposit:{row.Token.ToLowerInvariant()}:{row.TransactionHash.ToLowerInvariant()}:{row.LogIndex}");

    /// <summary>The transfer paying transit <paramref name="source"/>'s revenue from the custody holder's balance to its principal (once).</summary>
    public static UInt128 TransitPaid(string source) => ChainId($"share-transit\n{source}");

    /// <summary>The bytes32 naming node <paramref name="node"/> in its token.</summary>
    public static string NodeBytes32(long node) => BridgeIds.AccountToBytes32((UInt128)(ulong)node);

    /// <summary>The transfer paying the custody holder's claims out to the server's stablecoin, keyed by what its balance had paid out before.</summary>
    public static UInt128 DividendsPaid(long debitsPostedBefore) => ChainId($"share-dividends\n{debitsPostedBefore.ToString(CultureInfo.InvariantCulture)}");

    private static UInt128 ChainId(string key)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(key), hash);
        return ChartOfAccounts.TransferId(TransferSpace.Chain, BinaryPrimitives.ReadUInt64LittleEndian(hash) & ChartOfAccounts.QualifierMax,
            BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]) | 1);
    }
}
