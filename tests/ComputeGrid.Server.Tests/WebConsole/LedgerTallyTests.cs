using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.WebConsole;

namespace ComputeGrid.Server.Tests.WebConsole;

/// <summary>The console's totals are sums of the ledger's own transfers and balances, on a real state machine.</summary>
public sealed class LedgerTallyTests : IDisposable
{
    private readonly LedgerStateMachine _sm = new();
    private long _now = 1_000;
    private static readonly UInt128 Treasury = ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd);
    private static readonly UInt128 Escrow = ChartOfAccounts.SystemAccount(AccountCode.InferenceEscrow, Asset.Usd);
    private static readonly UInt128 Fees = ChartOfAccounts.SystemAccount(AccountCode.PlatformFees, Asset.Usd);
    private static readonly UInt128 Alice = ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, 7);
    private static readonly UInt128 Bob = ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, 8);

    public LedgerTallyTests()
    {
        Accounts(
            ChartOfAccounts.NewAccount(AccountCode.Treasury, Treasury, Asset.Usd),
            ChartOfAccounts.NewAccount(AccountCode.InferenceEscrow, Escrow, Asset.Usd),
            ChartOfAccounts.NewAccount(AccountCode.PlatformFees, Fees, Asset.Usd),
            ChartOfAccounts.NewAccount(AccountCode.CustomerBalance, Alice, Asset.Usd),
            ChartOfAccounts.NewAccount(AccountCode.CustomerBalance, Bob, Asset.Usd));
        Transfers(Plain(1, Treasury, Alice, 10_000_000, TransferCode.Funding), Plain(2, Treasury, Bob, 1_000_000, TransferCode.Funding));
    }

    public void Dispose() => _sm.Dispose();

    [Fact]
    public void A_posted_hold_counts_one_request_at_its_posted_cost_and_an_open_hold_counts_nothing()
    {
        var tally = new LedgerTally();
        Transfers(Hold(10, Alice, 500_000), Hold(20, Bob, 90_000));
        Transfers(new Transfer { Id = 11, PendingId = 10, Amount = 300_000, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.InferenceHold, Flags = TransferFlags.PostPendingTransfer },
            Plain(12, Escrow, Fees, 300_000, TransferCode.InferenceFee));

        LedgerTotals t = tally.Scan(_sm, op: 3);

        Assert.Equal(1, t.Requests);
        Assert.Equal(300_000, t.InferenceMicroUsd);
        Assert.Equal(new PayerTotals(1, 300_000), t.Payers[7]);
        Assert.False(t.Payers.ContainsKey(8)); // Bob's hold is still open: nothing charged yet
        Assert.Equal(10_000_000 - 300_000, t.Balances[7].BalanceMicroUsd);
        Assert.Equal(1_000_000 - 90_000, t.Balances[8].BalanceMicroUsd);
        Assert.Equal(90_000, t.Balances[8].HeldMicroUsd);
        Assert.True(t.Invariants.Ok, t.Invariants.Broken);
        Assert.Equal(3UL, t.Op);
    }

    [Fact]
    public void A_second_scan_adds_only_the_new_transfers_and_a_direct_charge_counts_like_a_post()
    {
        var tally = new LedgerTally();
        Transfers(Plain(30, Alice, Escrow, 200_000, TransferCode.InferenceHold)); // charged after its hold expired
        Assert.Equal(new PayerTotals(1, 200_000), tally.Scan(_sm, 1).Payers[7]);

        Transfers(Plain(31, Alice, Escrow, 1, TransferCode.InferenceHold), Plain(32, Escrow, Fees, 200_001, TransferCode.InferenceFee));
        LedgerTotals t = tally.Scan(_sm, 2);

        Assert.Equal(new PayerTotals(2, 200_001), t.Payers[7]);
        Assert.Equal(2, t.Requests);
        Assert.Equal(200_001, t.InferenceMicroUsd);
        Assert.Equal(0, t.LeaseMicroUsd);
        Assert.Equal(0, t.MiningMicroUsd);
        Assert.Equal(5, t.Transfers); // two fundings and three charges
    }

    [Fact]
    public void The_invariant_check_counts_every_asset_and_account()
    {
        InvariantStatus s = new LedgerTally().Scan(_sm, 0).Invariants;
        Assert.Equal(new InvariantStatus(true, 1, 5, null), s);
    }

    [Theory]
    [InlineData(5_000_000, 5_000_000_000, 1_000_000)]   // $5 over 5 s: $1 a second
    [InlineData(1, 3_000_000_000, 0)]                   // a micro-dollar over 3 s rounds down to nothing
    [InlineData(10, 3_000_000_000, 3)]                  // 10 / 3 rounds down
    [InlineData(long.MaxValue / 2, 1_000_000_000, long.MaxValue / 2)] // exact in 128 bits
    [InlineData(7, 0, 0)]                               // an empty window has no rate
    public void A_money_rate_is_integer_micro_usd_per_second_rounded_down(long delta, long windowNs, long expected) =>
        Assert.Equal(expected, LiveFigures.Sample.MoneyRate(delta, windowNs));

    private static Transfer Plain(ulong id, UInt128 debit, UInt128 credit, long amount, TransferCode code) =>
        new() { Id = id, DebitAccountId = debit, CreditAccountId = credit, Amount = amount, Asset = Asset.Usd.Code, Code = (ushort)code };

    private static Transfer Hold(ulong id, UInt128 payer, long amount) =>
        Plain(id, payer, Escrow, amount, TransferCode.InferenceHold) with { Flags = TransferFlags.Pending, Timeout = 60 };

    private void Accounts(params Account[] accounts)
    {
        var results = new CreateAccountResult[accounts.Length];
        _sm.CreateAccounts(accounts, _now += 1_000, results);
        Assert.All(results, r => Assert.Equal(CreateAccountResult.Ok, r));
    }

    private void Transfers(params Transfer[] transfers)
    {
        var results = new CreateTransferResult[transfers.Length];
        _sm.CreateTransfers(transfers, _now += 1_000, results);
        Assert.All(results, r => Assert.Equal(CreateTransferResult.Ok, r));
    }
}
