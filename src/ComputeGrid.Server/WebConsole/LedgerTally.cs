using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.WebConsole;

/// <summary>
/// The console's running totals read from the ledger itself: paid requests and what they cost (per payer and in all),
/// lease deliveries and mining proceeds, and the money invariants over every account. Nothing here is counted beside
/// the ledger: a figure on screen is a sum of committed transfers or of account balances.
/// <para>
/// <see cref="Scan"/> runs inside <see cref="LedgerEngine.ReadAsync{T}"/> (the ledger's thread, so the state machine
/// is still), once per sample. It reads only the transfers stored since the previous scan (the ledger keeps them all,
/// in timestamp order), so a scan costs the new transfers plus one pass over the accounts, whatever the history.
/// </para>
/// </summary>
public sealed class LedgerTally
{
    private int _next;
    private long _requests, _inferenceMicroUsd, _leaseMicroUsd, _miningMicroUsd;
    private readonly Dictionary<ulong, PayerTotals> _payers = [];

    /// <summary>Reads the transfers stored since the last scan and every account's balance; returns the totals now.</summary>
    public LedgerTotals Scan(LedgerStateMachine sm, ulong op)
    {
        int count = sm.TransferCount;
        for (int i = _next; i < count; i++)
        {
            ref readonly Transfer t = ref sm.TransferAt(i);
            if (LedgerStateMachine.IsPosting(in t)) Count(in t);
        }
        _next = count;
        return new LedgerTotals(op, count, sm.AccountCount, _requests, _inferenceMicroUsd, _leaseMicroUsd, _miningMicroUsd,
            new Dictionary<ulong, PayerTotals>(_payers), Balances(sm, out InvariantStatus invariants), invariants);
    }

    private void Count(in Transfer t)
    {
        switch ((TransferCode)t.Code)
        {
            // A request's charge: the post of its hold (or, after the hold expired, a direct charge), payer → escrow.
            // Its node and fee legs move the same money on from the escrow, so they are not counted again.
            case TransferCode.InferenceHold when t.Asset == Asset.Usd.Code:
                _requests++;
                _inferenceMicroUsd = checked(_inferenceMicroUsd + t.Amount);
                if (ChartOfAccounts.OwnerOf(t.DebitAccountId) is (AccountOwnership.Principal, ulong payer))
                {
                    PayerTotals p = _payers.GetValueOrDefault(payer);
                    _payers[payer] = new PayerTotals(p.Requests + 1, checked(p.SpentMicroUsd + t.Amount));
                }
                break;
            case TransferCode.DeliveryPayment:
                _leaseMicroUsd = checked(_leaseMicroUsd + t.Amount);
                break;
            // A node with shares pays its holders' part of each delivery from the lease's escrow (inference's part comes
            // from the inference escrow, already counted with its request).
            case TransferCode.ShareRevenue when CodeOf(t.DebitAccountId) == AccountCode.LeaseEscrow:
                _leaseMicroUsd = checked(_leaseMicroUsd + t.Amount);
                break;
            case TransferCode.SiteBitcoinProceeds:
                _miningMicroUsd = checked(_miningMicroUsd + t.Amount);
                break;
        }
    }

    // One pass over the accounts: the invariants the ledger keeps (per asset, debits equal credits, pending included; no
    // flagged account over its limit) and the stablecoin balances principals own, for each one's own view.
    private static Dictionary<ulong, OwnBalance> Balances(LedgerStateMachine sm, out InvariantStatus invariants)
    {
        var balances = new Dictionary<ulong, OwnBalance>();
        var sums = new Dictionary<uint, (Int128 Debits, Int128 Credits)>();
        string? broken = null;
        for (int i = 0; i < sm.AccountCount; i++)
        {
            ref readonly Account a = ref sm.AccountAt(i);
            var (d, c) = sums.GetValueOrDefault(a.Asset);
            sums[a.Asset] = (d + a.DebitsPending + a.DebitsPosted, c + a.CreditsPending + a.CreditsPosted);
            if ((a.Flags & AccountFlags.DebitsMustNotExceedCredits) != 0 && (Int128)a.DebitsPending + a.DebitsPosted > a.CreditsPosted)
                broken ??= $"account {a.Id}: debits exceed credits";
            if ((a.Flags & AccountFlags.CreditsMustNotExceedDebits) != 0 && (Int128)a.CreditsPending + a.CreditsPosted > a.DebitsPosted)
                broken ??= $"account {a.Id}: credits exceed debits";
            if (a.Asset != Asset.Usd.Code || ChartOfAccounts.OwnerOf(a.Id) is not (AccountOwnership.Principal, ulong owner)) continue;
            OwnBalance b = balances.GetValueOrDefault(owner);
            long available = checked(a.CreditsPosted - a.DebitsPosted - a.DebitsPending);
            balances[owner] = (AccountCode)a.Code switch
            {
                AccountCode.CustomerBalance => b with { BalanceMicroUsd = available, HeldMicroUsd = a.DebitsPending },
                AccountCode.ExchangeTrading => b with { TradingMicroUsd = available, TradingHeldMicroUsd = a.DebitsPending },
                AccountCode.ProviderRevenue => b with { RevenueMicroUsd = available },
                _ => b,
            };
        }
        foreach (var (asset, (d, c)) in sums)
            if (d != c) broken ??= $"asset {asset}: debits {d} ≠ credits {c}";
        invariants = new InvariantStatus(broken is null, sums.Count, sm.AccountCount, broken);
        return balances;
    }

    private static AccountCode? CodeOf(UInt128 account) =>
        ChartOfAccounts.TryDecode(account, out ushort code, out _, out _) ? (AccountCode)code : null;
}

/// <summary>What one payer's paid requests cost, all time.</summary>
/// <param name="Requests">Requests charged.</param>
/// <param name="SpentMicroUsd">Their total cost, micro-USD.</param>
public readonly record struct PayerTotals(long Requests, long SpentMicroUsd);

/// <summary>A principal's stablecoin accounts (micro-USD; available = posted credits − posted debits − held).</summary>
/// <param name="BalanceMicroUsd">A customer's balance, available.</param>
/// <param name="HeldMicroUsd">A customer's balance held by requests in flight.</param>
/// <param name="TradingMicroUsd">Its exchange trading account, available.</param>
/// <param name="TradingHeldMicroUsd">Its exchange trading account held by open buy orders.</param>
/// <param name="RevenueMicroUsd">A provider's revenue account, available.</param>
public readonly record struct OwnBalance(long BalanceMicroUsd, long HeldMicroUsd, long TradingMicroUsd, long TradingHeldMicroUsd, long RevenueMicroUsd);

/// <summary>The money invariants as the last sample found them.</summary>
/// <param name="Ok">Every invariant holds.</param>
/// <param name="Assets">Assets checked (per asset, total debits equal total credits, pending included).</param>
/// <param name="Accounts">Accounts checked (none beyond its flag's limit).</param>
/// <param name="Broken">The first broken invariant, or null.</param>
public sealed record InvariantStatus(bool Ok, int Assets, int Accounts, string? Broken);

/// <summary>The ledger's totals at one op.</summary>
public sealed record LedgerTotals(ulong Op, int Transfers, int Accounts, long Requests, long InferenceMicroUsd, long LeaseMicroUsd, long MiningMicroUsd,
    IReadOnlyDictionary<ulong, PayerTotals> Payers, IReadOnlyDictionary<ulong, OwnBalance> Balances, InvariantStatus Invariants);
