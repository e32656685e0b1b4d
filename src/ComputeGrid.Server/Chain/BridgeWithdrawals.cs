using ComputeGrid.Chain.Bridge;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Chain;

/// <summary>Why a withdrawal request was not taken.</summary>
public enum WithdrawalRequestOutcome
{
    /// <summary>Taken (or the same request again): the row says where it stands.</summary>
    Accepted,
    /// <summary>The Idempotency-Key was used before for another amount or address.</summary>
    KeyReused,
    /// <summary>The balance is short: the ledger refused the hold; nothing moved.</summary>
    InsufficientFunds,
}

/// <summary>
/// Withdrawals from the ledger to the chain, exactly once. A request is recorded in the outbox first (its id derives
/// from the principal and its Idempotency-Key), then held in the ledger (a pending transfer payer →
/// <see cref="AccountCode.ChainWithdrawalsInFlight"/>, durable), then sent: <c>vault.withdraw(to, amount, id)</c>. The
/// vault pays an id once, so a resend after a crash cannot pay twice; a resend it refuses as "already paid" means the
/// earlier one was mined, and its log says where. Once the payment has its confirmations in the canonical chain the
/// hold is posted and the money leaves custody; a payment a reorg dropped is sent again; a send the vault refuses for
/// good voids the hold. A chain that does not answer is retried at the next pass. Every step is idempotent, so a
/// restart anywhere resumes the row where it stands.
/// </summary>
public sealed class BridgeWithdrawals(ChainConnection chain, LedgerEngine ledger, BridgeStore store, BridgeOptions options, TimeProvider time, ILogger<BridgeWithdrawals>? log = null)
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    // How far back a confirmation looks for a payment a reorg moved to another block (deeper reorgs are not expected).
    private const long ReorgDepthMax = 1_000;

    private static readonly UInt128 InFlight = ChartOfAccounts.SystemAccount(AccountCode.ChainWithdrawalsInFlight, Asset.Usd);
    private static readonly UInt128 Custody = ChartOfAccounts.SystemAccount(AccountCode.ChainCustody, Asset.Usd);

    /// <summary>
    /// Takes a withdrawal of <paramref name="amount"/> from <paramref name="account"/> (owned by <paramref name="principal"/>)
    /// to <paramref name="to"/>: recorded, then held, before this returns. The same key again returns the same withdrawal.
    /// </summary>
    public async Task<(WithdrawalRequestOutcome Outcome, WithdrawalRow? Row)> RequestAsync(ulong principal, UInt128 account, long amount, string to, string idempotencyKey, CancellationToken ct = default)
    {
        string id = BridgeIds.Withdrawal(principal, idempotencyKey);
        long now = Now();
        WithdrawalRow row = store.InsertWithdrawal(new WithdrawalRow(id, principal, account, to, amount, idempotencyKey, WithdrawalState.New, null, null, 0, null, now, now));
        if (row.Amount != amount || !string.Equals(row.To, to, StringComparison.OrdinalIgnoreCase) || row.Account != account)
            return (WithdrawalRequestOutcome.KeyReused, row);
        if (row.State == WithdrawalState.New) row = await HoldAsync(row, ct).ConfigureAwait(false);
        return row.State == WithdrawalState.Refused ? (WithdrawalRequestOutcome.InsufficientFunds, row) : (WithdrawalRequestOutcome.Accepted, row);
    }

    /// <summary>One pass over the open withdrawals: hold, send, confirm, each as far as it can go now.</summary>
    public async Task<int> ProcessAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            int finished = 0;
            foreach (WithdrawalRow open in store.OpenWithdrawals())
            {
                WithdrawalRow row = open;
                try
                {
                    if (row.State == WithdrawalState.New) row = await HoldAsync(row, ct).ConfigureAwait(false);
                    if (row.State == WithdrawalState.Held) row = await SendAsync(row).ConfigureAwait(false);
                    if (row.State == WithdrawalState.Sent) row = await ConfirmAsync(row, ct).ConfigureAwait(false);
                    if (row.State is WithdrawalState.Paid or WithdrawalState.Failed or WithdrawalState.Refused) finished++;
                }
                catch (Exception e) when (e is HttpRequestException or TimeoutException or Nethereum.JsonRpc.Client.RpcClientUnknownException
                    or Nethereum.JsonRpc.Client.RpcClientTimeoutException or Nethereum.JsonRpc.Client.RpcResponseException)
                {
                    // The chain did not answer: the row stays where it is and the next pass tries again.
                    store.SetWithdrawal(row.Id, row.State, row.TransactionHash, row.BlockNumber, e.Message, Now(), attempt: true);
                    log?.LogWarning("Withdrawal {Id}: the chain did not answer ({Reason}); retried next pass", row.Id, e.Message);
                }
            }
            return finished;
        }
        finally { _gate.Release(); }
    }

    private async Task<WithdrawalRow> HoldAsync(WithdrawalRow row, CancellationToken ct)
    {
        var hold = new Transfer
        {
            Id = BridgeIds.WithdrawalTransfer(row.Id, WithdrawalStep.Hold), DebitAccountId = row.Account, CreditAccountId = InFlight,
            Amount = row.Amount, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.ChainWithdrawal, Flags = TransferFlags.Pending, UserData64 = row.Principal,
        };
        CreateTransferResult r = (await ledger.CreateTransfersAsync(new[] { hold }, LedgerAck.Durable, ct).ConfigureAwait(false))[0];
        WithdrawalState state = r switch
        {
            CreateTransferResult.Ok or CreateTransferResult.Exists => WithdrawalState.Held,
            CreateTransferResult.ExceedsCredits or CreateTransferResult.DebitAccountNotFound => WithdrawalState.Refused,
            _ => throw new InvalidOperationException($"The ledger refused withdrawal {row.Id}'s hold: {r}"),
        };
        store.SetWithdrawal(row.Id, state, null, null, state == WithdrawalState.Refused ? r.ToString() : null, Now(), onlyFrom: WithdrawalState.New);
        return store.Withdrawal(row.Id)!;
    }

    private async Task<WithdrawalRow> SendAsync(WithdrawalRow row)
    {
        ChainReceipt? receipt = null;
        try
        {
            receipt = await chain.Vault.WithdrawAsync(row.To, row.Amount, row.Id).ConfigureAwait(false);
        }
        catch (ChainRevertException e) when (e.Reason.Contains("withdrawal already paid", StringComparison.Ordinal))
        {
            // Sent before a crash (or by a resend whose answer was lost): the log says where it was paid.
        }
        catch (ChainRevertException e)
        {
            // The vault refuses this withdrawal for good (a bad address, too little in the vault): the money goes back.
            log?.LogError("Withdrawal {Id} refused by the vault: {Reason}; its hold is voided", row.Id, e.Reason);
            return await FinishAsync(row, paid: false, e.Reason, CancellationToken.None).ConfigureAwait(false);
        }
        if (receipt is not null && options.AfterWithdrawalSent is { } fault) await fault(row.Id).ConfigureAwait(false);
        ChainWithdrawal? found = await ChainReads.FindWithdrawalAsync(chain.Web3, chain.Info.Vault, row.Id, receipt?.BlockNumber ?? 0).ConfigureAwait(false);
        if (found is null)
        {
            // Mined and then reorganised away before the log could be read: send again next pass.
            store.SetWithdrawal(row.Id, WithdrawalState.Held, null, null, "payment not found on chain after sending", Now(), attempt: true);
            return store.Withdrawal(row.Id)!;
        }
        store.SetWithdrawal(row.Id, WithdrawalState.Sent, found.TransactionHash, found.BlockNumber, null, Now(), attempt: true);
        return store.Withdrawal(row.Id)!;
    }

    private async Task<WithdrawalRow> ConfirmAsync(WithdrawalRow row, CancellationToken ct)
    {
        // A payment a reorg moved is found again from a little before where it was.
        ChainWithdrawal? found = await ChainReads.FindWithdrawalAsync(chain.Web3, chain.Info.Vault, row.Id, (row.BlockNumber ?? 0) - ReorgDepthMax).ConfigureAwait(false);
        if (found is null)
        {
            // The block that paid it is gone (a reorg): the vault no longer counts it paid, so it is sent again.
            log?.LogWarning("Withdrawal {Id}: its payment {Tx} is no longer in the chain; sent again", row.Id, row.TransactionHash);
            store.SetWithdrawal(row.Id, WithdrawalState.Held, null, null, "payment reorganised away", Now());
            return store.Withdrawal(row.Id)!;
        }
        long head = await ChainReads.HeadAsync(chain.Web3).ConfigureAwait(false);
        if (head - found.BlockNumber + 1 < chain.Confirmations)
        {
            if (found.TransactionHash != row.TransactionHash || found.BlockNumber != row.BlockNumber)
                store.SetWithdrawal(row.Id, WithdrawalState.Sent, found.TransactionHash, found.BlockNumber, null, Now());
            return store.Withdrawal(row.Id)!;
        }
        store.SetWithdrawal(row.Id, WithdrawalState.Sent, found.TransactionHash, found.BlockNumber, null, Now());
        return await FinishAsync(row, paid: true, null, ct).ConfigureAwait(false);
    }

    // Posts (paid) or voids (refused) the hold; a paid one also leaves custody. Both transfers are idempotent by id.
    private async Task<WithdrawalRow> FinishAsync(WithdrawalRow row, bool paid, string? error, CancellationToken ct)
    {
        UInt128 holdId = BridgeIds.WithdrawalTransfer(row.Id, WithdrawalStep.Hold);
        Transfer[] transfers = paid
            ?
            [
                new Transfer
                {
                    Id = BridgeIds.WithdrawalTransfer(row.Id, WithdrawalStep.Post), PendingId = holdId, DebitAccountId = row.Account, CreditAccountId = InFlight,
                    Amount = row.Amount, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.ChainWithdrawal, Flags = TransferFlags.PostPendingTransfer,
                },
                new Transfer
                {
                    Id = BridgeIds.WithdrawalTransfer(row.Id, WithdrawalStep.Paid), DebitAccountId = InFlight, CreditAccountId = Custody,
                    Amount = row.Amount, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.ChainWithdrawalPaid, UserData64 = row.Principal,
                },
            ]
            :
            [
                new Transfer
                {
                    Id = BridgeIds.WithdrawalTransfer(row.Id, WithdrawalStep.Void), PendingId = holdId, DebitAccountId = row.Account, CreditAccountId = InFlight,
                    Amount = row.Amount, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.ChainWithdrawal, Flags = TransferFlags.VoidPendingTransfer,
                },
            ];
        CreateTransferResult[] r = await ledger.CreateTransfersAsync(transfers, LedgerAck.Durable, ct).ConfigureAwait(false);
        if (r.Any(x => x is not (CreateTransferResult.Ok or CreateTransferResult.Exists)))
            throw new InvalidOperationException($"The ledger refused to {(paid ? "post" : "void")} withdrawal {row.Id}: {string.Join(", ", r)}");
        WithdrawalRow current = store.Withdrawal(row.Id)!;
        store.SetWithdrawal(row.Id, paid ? WithdrawalState.Paid : WithdrawalState.Failed, current.TransactionHash, current.BlockNumber, error, Now());
        return store.Withdrawal(row.Id)!;
    }

    private long Now() => checked(time.GetUtcNow().ToUnixTimeMilliseconds() * 1_000_000);
}
