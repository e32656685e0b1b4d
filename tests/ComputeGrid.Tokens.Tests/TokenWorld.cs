using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Tokens.Tests;

/// <summary>
/// A real <see cref="LedgerStateMachine"/> with node shares on it and a <see cref="ShareLedgerProjection"/> over a
/// <see cref="ShareRegistry"/> attached as its observer: what the tests drive with real transfers.
/// </summary>
internal sealed class TokenWorld : IDisposable
{
    public const long Start = 1_750_000_000_000_000_000;
    public const long PayerFunding = 1_000_000_000_000_000; // 10^9 USD in micro-USD

    public readonly LedgerStateMachine Ledger = new(64, 1 << 12);
    public readonly ShareRegistry Registry = new();
    public readonly ShareLedgerProjection Projection;
    private readonly HashSet<(ulong Holder, ulong Node)> _holderAccounts = new();
    private readonly HashSet<ulong> _customers = new();
    private ulong _key = 1;

    public TokenWorld()
    {
        Projection = new ShareLedgerProjection(Registry);
        Ledger.Observer = Projection;
        Accounts([ChartOfAccounts.NewAccount(AccountCode.Treasury, Treasury, Asset.Usd)]);
    }

    public static UInt128 Treasury => ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd);

    /// <summary>The USD account a node's revenue is paid from (its inference revenue).</summary>
    public static UInt128 Payer(ulong node) => ChartOfAccounts.PrincipalAccount(AccountCode.NodeRevenue, node);

    public static UInt128 Escrow(ulong node) => ChartOfAccounts.SystemAccount(AccountCode.ShareEscrow, Asset.NodeShares(node).Code);

    public ulong NextKey() => _key++;

    /// <summary>Issues <paramref name="supply"/> shares of <paramref name="node"/> to <paramref name="issuer"/>, with a funded payer and the escrow.</summary>
    public void IssueNode(ulong node, ulong issuer, long supply)
    {
        Accounts([
            .. TokenTransfers.IssuanceAccounts(node, issuer),
            ChartOfAccounts.NewAccount(AccountCode.SharePledge, ChartOfAccounts.SharePledge(issuer, node), Asset.NodeShares(node)),
            ChartOfAccounts.NewAccount(AccountCode.ShareEscrow, Escrow(node), Asset.NodeShares(node)),
            ChartOfAccounts.NewAccount(AccountCode.NodeRevenue, Payer(node), Asset.Usd),
        ]);
        _holderAccounts.Add((issuer, node));
        Customer(issuer);
        Ok([
            TokenTransfers.Issue(node, issuer, supply),
            new Transfer { Id = ChartOfAccounts.TransferId(TransferSpace.Funding, 0, node), DebitAccountId = Treasury, CreditAccountId = Payer(node),
                Amount = PayerFunding, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.Funding },
        ]);
    }

    /// <summary>Makes sure <paramref name="holder"/> has its share accounts of <paramref name="node"/> and a customer balance.</summary>
    public void Holder(ulong holder, ulong node)
    {
        if (_holderAccounts.Add((holder, node))) Accounts(TokenTransfers.HolderAccounts(holder, node));
        Customer(holder);
    }

    private void Customer(ulong holder)
    {
        if (_customers.Add(holder))
            Accounts([ChartOfAccounts.NewAccount(AccountCode.CustomerBalance, ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, holder), Asset.Usd)]);
    }

    public void Accounts(Account[] accounts)
    {
        var results = new CreateAccountResult[accounts.Length];
        Ledger.CreateAccounts(accounts, Ledger.NextBatchTimestamp(Start), results);
        foreach (var r in results) Assert.Equal(CreateAccountResult.Ok, r);
    }

    public CreateTransferResult[] Submit(params Transfer[] transfers)
    {
        var results = new CreateTransferResult[transfers.Length];
        Ledger.CreateTransfers(transfers, Ledger.NextBatchTimestamp(Start), results);
        return results;
    }

    public void Ok(params Transfer[] transfers)
    {
        var results = Submit(transfers);
        for (int i = 0; i < results.Length; i++) Assert.True(results[i] == CreateTransferResult.Ok, $"transfer {i}: {results[i]}");
    }

    public long Balance(UInt128 account) => Ledger.TryGetAccount(account, out Account a) ? a.CreditBalance : 0;

    /// <summary>Posted credits less posted and pending debits: what a holder may move now (a sell order's hold is not free).</summary>
    public long Free(UInt128 account) => Ledger.TryGetAccount(account, out Account a) ? a.AvailableCredit : 0;

    public long Holding(ulong holder, ulong node) => Balance(ChartOfAccounts.ShareHolding(holder, node));

    public long Pledged(ulong holder, ulong node) => Balance(ChartOfAccounts.SharePledge(holder, node));

    public void Dispose() => Ledger.Dispose();
}
