using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Tokens;

/// <summary>What a token transfer is for: part of its id, so two operations with one command key never collide.</summary>
public enum TokenOperation : byte
{
    /// <summary>A node's issue of its supply (the id's number is the node, so a node issues once).</summary>
    Issue = 1,
    /// <summary>Revenue paid into a node's share pool.</summary>
    Revenue = 2,
    /// <summary>A holder's claim from a pool.</summary>
    Claim = 3,
    /// <summary>Shares from one holder to another, off the book.</summary>
    Transfer = 4,
    /// <summary>Shares into a pledge.</summary>
    Pledge = 5,
    /// <summary>Shares released from a pledge.</summary>
    Unpledge = 6,
    /// <summary>Pledged shares of a defaulted loan moved to a buyer.</summary>
    Liquidation = 7,
}

/// <summary>
/// The ledger accounts and transfers of node shares, built from the chart of accounts. Transfer ids lie in
/// <see cref="TransferSpace.Tokens"/>: qualifier = the operation (and the leg of a multi-transfer one), number = the
/// caller's command key (a request key, a sequence number), so a retried command maps to the same ids and the
/// ledger answers <c>Exists</c>. The issue's number is the node itself: a second issue of one node is refused by the
/// ledger (<c>ExistsWithDifferent…</c>) or is an idempotent retry. Builders check their arguments
/// (<see cref="ArgumentOutOfRangeException"/>); what depends on state (balances, what a holder is owed) is the
/// ledger's and the caller's to check.
/// </summary>
public static class TokenTransfers
{
    /// <summary>The accounts a node's issue needs: the issuance side of its shares, the issuer's holding, its share pool.</summary>
    public static Account[] IssuanceAccounts(ulong node, ulong issuer)
    {
        Asset shares = Asset.NodeShares(node);
        return
        [
            ChartOfAccounts.NewAccount(AccountCode.ShareIssuance, ChartOfAccounts.SystemAccount(AccountCode.ShareIssuance, shares.Code), shares),
            ChartOfAccounts.NewAccount(AccountCode.ShareHolding, ChartOfAccounts.ShareHolding(issuer, node), shares),
            ChartOfAccounts.NewAccount(AccountCode.SharePool, ChartOfAccounts.SharePool(node), Asset.Usd),
        ];
    }

    /// <summary>A holder's accounts of one node: its holding and its pledge.</summary>
    public static Account[] HolderAccounts(ulong holder, ulong node)
    {
        Asset shares = Asset.NodeShares(node);
        return
        [
            ChartOfAccounts.NewAccount(AccountCode.ShareHolding, ChartOfAccounts.ShareHolding(holder, node), shares),
            ChartOfAccounts.NewAccount(AccountCode.SharePledge, ChartOfAccounts.SharePledge(holder, node), shares),
        ];
    }

    /// <summary>The issue of the node's whole, fixed <paramref name="supply"/> to <paramref name="issuer"/>'s holding.</summary>
    public static Transfer Issue(ulong node, ulong issuer, long supply)
    {
        Positive(supply, nameof(supply));
        Asset shares = Asset.NodeShares(node);
        return New(Id(TokenOperation.Issue, node), ChartOfAccounts.SystemAccount(AccountCode.ShareIssuance, shares.Code),
            ChartOfAccounts.ShareHolding(issuer, node), supply, shares, TransferCode.ShareIssue, issuer);
    }

    /// <summary>Revenue of <paramref name="amount"/> micro-USD from <paramref name="source"/> (a USD account) into the node's pool.</summary>
    public static Transfer Revenue(ulong commandKey, UInt128 source, ulong node, long amount)
    {
        Positive(amount, nameof(amount));
        return New(Id(TokenOperation.Revenue, commandKey), source, ChartOfAccounts.SharePool(node), amount, Asset.Usd, TransferCode.ShareRevenue, node);
    }

    /// <summary>
    /// <paramref name="holder"/> claims <paramref name="amount"/> micro-USD from the node's pool into its customer
    /// balance. The amount must not exceed what it is owed (<see cref="ClaimPolicy"/>): the projection asserts it.
    /// </summary>
    public static Transfer Claim(ulong commandKey, ulong node, ulong holder, long amount) =>
        Claim(commandKey, node, holder, amount, ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, holder));

    /// <summary>As <see cref="Claim(ulong, ulong, ulong, long)"/>, into another USD account <paramref name="holder"/> owns.</summary>
    public static Transfer Claim(ulong commandKey, ulong node, ulong holder, long amount, UInt128 into)
    {
        Positive(amount, nameof(amount));
        var (ownership, owner) = ChartOfAccounts.OwnerOf(into);
        if (ownership != AccountOwnership.Principal || owner != holder)
            throw new ArgumentOutOfRangeException(nameof(into), "a claim is paid into an account the holder owns");
        return New(Id(TokenOperation.Claim, commandKey), ChartOfAccounts.SharePool(node), into, amount, Asset.Usd, TransferCode.ShareClaim, holder);
    }

    /// <summary><paramref name="shares"/> of the node from <paramref name="from"/>'s holding to <paramref name="to"/>'s.</summary>
    public static Transfer ShareTransfer(ulong commandKey, ulong node, ulong from, ulong to, long shares)
    {
        Positive(shares, nameof(shares));
        if (from == to) throw new ArgumentOutOfRangeException(nameof(to), "a share transfer goes to another holder");
        return New(Id(TokenOperation.Transfer, commandKey), ChartOfAccounts.ShareHolding(from, node), ChartOfAccounts.ShareHolding(to, node),
            shares, Asset.NodeShares(node), TransferCode.ShareTransfer, from);
    }

    /// <summary><paramref name="holder"/> pledges <paramref name="shares"/>: from its holding into its pledge.</summary>
    public static Transfer Pledge(ulong commandKey, ulong node, ulong holder, long shares)
    {
        Positive(shares, nameof(shares));
        return New(Id(TokenOperation.Pledge, commandKey), ChartOfAccounts.ShareHolding(holder, node), ChartOfAccounts.SharePledge(holder, node),
            shares, Asset.NodeShares(node), TransferCode.SharePledge, holder);
    }

    /// <summary>Releases <paramref name="shares"/> of <paramref name="holder"/>'s pledge back to its holding.</summary>
    public static Transfer Unpledge(ulong commandKey, ulong node, ulong holder, long shares)
    {
        Positive(shares, nameof(shares));
        return New(Id(TokenOperation.Unpledge, commandKey), ChartOfAccounts.SharePledge(holder, node), ChartOfAccounts.ShareHolding(holder, node),
            shares, Asset.NodeShares(node), TransferCode.SharePledge, holder);
    }

    /// <summary>A liquidation: <paramref name="shares"/> of <paramref name="borrower"/>'s pledge go to <paramref name="buyer"/>'s holding.</summary>
    public static Transfer Liquidation(ulong commandKey, ulong node, ulong borrower, ulong buyer, long shares)
    {
        Positive(shares, nameof(shares));
        if (borrower == buyer) throw new ArgumentOutOfRangeException(nameof(buyer), "a liquidation sells to another holder");
        return New(Id(TokenOperation.Liquidation, commandKey), ChartOfAccounts.SharePledge(borrower, node), ChartOfAccounts.ShareHolding(buyer, node),
            shares, Asset.NodeShares(node), TransferCode.SharePledge, borrower);
    }

    /// <summary>The id of leg <paramref name="leg"/> of <paramref name="operation"/> for <paramref name="commandKey"/>.</summary>
    public static UInt128 Id(TokenOperation operation, ulong commandKey, byte leg = 0) =>
        ChartOfAccounts.TransferId(TransferSpace.Tokens, ((ulong)operation << 8) | leg, commandKey);

    private static Transfer New(UInt128 id, UInt128 debit, UInt128 credit, long amount, Asset asset, TransferCode code, ulong principal) => new()
    {
        Id = id, DebitAccountId = debit, CreditAccountId = credit, Amount = amount, Asset = asset.Code, Code = (ushort)code, UserData64 = principal,
    };

    private static void Positive(long value, string name)
    {
        if (value <= 0) throw new ArgumentOutOfRangeException(name, value, "must be positive");
    }
}
