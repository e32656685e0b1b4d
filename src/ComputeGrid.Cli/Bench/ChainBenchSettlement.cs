using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Chain;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// The bench's conservation check: every paid answer the clients received settled exactly once on chain, and nothing
/// else did. The clients count, per payer, the value of each authorization that bought an answer; once the server has
/// nothing left to settle, each payer's on-chain balance must have fallen by exactly that sum, the server's account
/// risen by the total, the ledger's chain custody grown by the total, the settlement store hold one Settled intent per
/// paid answer and no Failed one, and the answers must name as many distinct transactions. A request that was refused
/// must have moved nothing (its authorization was never sent), which the balances show too. Vault deposits made beside
/// the payments are in the custody figure too, and the account they name must hold exactly their sum: each credited once.
/// </summary>
internal sealed class ChainBenchSettlement
{
    /// <summary>How long the check waits for the server's last settlements to be mined and confirmed.</summary>
    public static readonly TimeSpan SettleWaitMax = TimeSpan.FromSeconds(120);

    private readonly long[] _valueByPayer;
    private readonly HashSet<string> _transactions = new(StringComparer.OrdinalIgnoreCase);
    private readonly long[] _payerBalancesBefore;
    private readonly long _payToBefore;
    private readonly long _custodyBefore, _vaultBefore;
    private long _paid, _refused, _deposited;

    private ChainBenchSettlement(long[] payerBalancesBefore, long payToBefore, long custodyBefore, long vaultBefore)
    {
        _valueByPayer = new long[payerBalancesBefore.Length];
        (_payerBalancesBefore, _payToBefore, _custodyBefore, _vaultBefore) = (payerBalancesBefore, payToBefore, custodyBefore, vaultBefore);
    }

    /// <summary>Paid answers so far (200 with a settlement hash).</summary>
    public long Paid => Interlocked.Read(ref _paid);

    /// <summary>Paid requests that got no paid answer.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Reads the balances the check compares against, before any payment.</summary>
    public static async Task<ChainBenchSettlement> StartAsync(ChainBenchRig rig, CancellationToken ct)
    {
        var payers = new long[rig.PayerCount];
        for (int i = 0; i < payers.Length; i++) payers[i] = await rig.Chain.Stablecoin.BalanceOfAsync(rig.Payer(i).ToChecksumString()).WaitAsync(ct);
        return new ChainBenchSettlement(payers, await rig.Chain.Stablecoin.BalanceOfAsync(rig.Chain.Info.PayTo).WaitAsync(ct), await CustodyAsync(rig, X402Ledger.CustodyAccount, ct), await CustodyAsync(rig, VaultCustodyAccount, ct));
    }

    /// <summary>Counts one paid request's outcome.</summary>
    public void Record(SignedPayment payment, Answer answer)
    {
        lock (_transactions)
        {
            if (answer.Status == 200)
            {
                _valueByPayer[payment.Payer] = checked(_valueByPayer[payment.Payer] + payment.Value);
                _transactions.Add(answer.TxHash!);
                _paid++;
            }
            else _refused++;
        }
    }

    /// <summary>Counts a vault deposit the bridge credited.</summary>
    public void RecordDeposit(long amount)
    {
        lock (_transactions) _deposited = checked(_deposited + amount);
    }

    /// <summary>The vault deposits credited, micro-USD.</summary>
    public long Deposited
    {
        get { lock (_transactions) return _deposited; }
    }

    /// <summary>The total value of the paid answers, micro-USD.</summary>
    public long PaidValue
    {
        get { lock (_transactions) return _valueByPayer.Aggregate(0L, (a, v) => checked(a + v)); }
    }

    /// <summary>Waits until the server has nothing left to settle; false when <see cref="SettleWaitMax"/> passed first.</summary>
    public static async Task<bool> WaitSettledAsync(ChainBenchRig rig, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + SettleWaitMax;
        while (DateTime.UtcNow < deadline)
        {
            var counts = rig.X402.Store.Counts();
            if (counts[X402State.Reserved] + counts[X402State.Sent] == 0) return true;
            await Task.Delay(100, ct);
        }
        return false;
    }

    /// <summary>The first broken rule, in one line, or null when every paid answer settled exactly once.</summary>
    public async Task<string?> ProblemAsync(ChainBenchRig rig, CancellationToken ct)
    {
        var counts = rig.X402.Store.Counts();
        if (counts[X402State.Settled] != Paid)
            return $"{Paid} paid answers but {counts[X402State.Settled]} settled intents ({counts[X402State.Failed]} failed, {counts[X402State.Sent]} sent, {counts[X402State.Reserved]} reserved)";
        if (counts[X402State.Failed] != 0) return $"{counts[X402State.Failed]} settlements failed after service";
        lock (_transactions)
            if (_transactions.Count != Paid) return $"{Paid} paid answers named {_transactions.Count} distinct transactions";
        for (int i = 0; i < _payerBalancesBefore.Length; i++)
        {
            long now = await rig.Chain.Stablecoin.BalanceOfAsync(rig.Payer(i).ToChecksumString()).WaitAsync(ct);
            long fell = checked(_payerBalancesBefore[i] - now);
            if (fell != _valueByPayer[i]) return $"payer {rig.Payer(i).ToChecksumString()} paid {_valueByPayer[i]} micro-USD for its answers but its balance fell by {fell}";
        }
        long total = PaidValue;
        long rose = checked(await rig.Chain.Stablecoin.BalanceOfAsync(rig.Chain.Info.PayTo).WaitAsync(ct) - _payToBefore);
        if (rose != total) return $"the answers were paid {total} micro-USD but the server's account rose by {rose}";
        long custody = checked(await CustodyAsync(rig, X402Ledger.CustodyAccount, ct) - _custodyBefore);
        if (custody != total) return $"the answers were paid {total} micro-USD but the ledger's custody of the server's chain account grew by {custody}";
        long vault = checked(await CustodyAsync(rig, VaultCustodyAccount, ct) - _vaultBefore);
        if (vault != Deposited) return $"the vault took {Deposited} micro-USD of deposits but the ledger's vault custody grew by {vault}";
        long credited = await rig.DepositBalanceAsync(ct);
        if (credited != Deposited) return $"the vault took {Deposited} micro-USD of deposits but the account they name holds {credited}";
        return null;
    }

    private static readonly UInt128 VaultCustodyAccount = ChartOfAccounts.SystemAccount(AccountCode.VaultCustody, Asset.Usd);

    // Both custody accounts are debit-normal system accounts: settled authorizations debit the server account's custody,
    // vault deposits the vault's.
    private static async Task<long> CustodyAsync(ChainBenchRig rig, UInt128 account, CancellationToken ct)
    {
        Account[] found = await rig.App.Services.GetRequiredService<LedgerEngine>().LookupAccountsAsync([account], ct);
        return found.Length == 0 ? 0 : checked((long)(found[0].DebitsPosted - found[0].CreditsPosted));
    }
}
