using System.Runtime.CompilerServices;
using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Tokens;

/// <summary>
/// Keeps an <see cref="IShareBook"/> in step with the ledger: attached as the <see cref="LedgerStateMachine.Observer"/>
/// it sees every committed posting once, so the book is a function of the ledger alone (rebuilt at start with
/// <see cref="Rebuild"/>, which replays the same postings in the same order).
/// <para>What it maps, by the accounts a posting touches (the chart of accounts says what each is):</para>
/// <list type="bullet">
/// <item>a credit to <c>SharePool(node)</c>: revenue, R += amount (whatever the transfer code: every credit to the pool
///   is owed to the holders, so the pool's balance is always R − Σ claims);</item>
/// <item>a debit of <c>SharePool(node)</c> (code <see cref="TransferCode.ShareClaim"/>): the claim of the principal
///   that owns the credited account; it must not exceed what that principal is owed;</item>
/// <item>in a node's share asset, <c>ShareIssuance → ShareHolding(issuer)</c> (<see cref="TransferCode.ShareIssue"/>):
///   the node's fixed supply, once;</item>
/// <item>in a node's share asset, any other move between <c>ShareHolding</c> / <c>SharePledge</c> of holders and the
///   <c>ShareEscrow</c> (pseudo-holder 0): both sides are settled, then the shares move. A pledge and its release
///   (between one holder's two accounts) move nothing: pledged shares earn for their owner.</item>
/// </list>
/// Anything else in a share asset, or touching a pool in a way not listed, breaks the chart's rules: it throws.
/// Postings that touch neither cost two field reads.
/// </summary>
public sealed class ShareLedgerProjection(IShareBook book) : ILedgerObserver
{
    /// <summary>The book this projection drives.</summary>
    public IShareBook Book { get; } = book ?? throw new ArgumentNullException(nameof(book));

    /// <summary>
    /// Builds the book from everything <paramref name="ledger"/> holds (every transfer is kept, snapshots included,
    /// so this is the whole history) and attaches the projection as its observer, so the book then stays in step.
    /// </summary>
    public static ShareLedgerProjection Rebuild(LedgerStateMachine ledger, IShareBook book)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        var projection = new ShareLedgerProjection(book);
        ledger.ReplayPosted(projection);
        ledger.Observer = projection;
        return projection;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnPosted(in Transfer transfer)
    {
        ushort credit = CodeOf(transfer.CreditAccountId);
        if (credit == (ushort)AccountCode.SharePool) { OnRevenue(in transfer); return; }
        if (Asset.IsNodeShares(transfer.Asset, out ulong node)) { OnShares(in transfer, node); return; }
        if (CodeOf(transfer.DebitAccountId) == (ushort)AccountCode.SharePool) OnClaim(in transfer);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void OnRevenue(in Transfer t)
    {
        if (CodeOf(t.DebitAccountId) == (ushort)AccountCode.SharePool) Fail(in t, "moves money between two share pools");
        Book.Pay((ulong)t.CreditAccountId, t.Amount);
    }

    private void OnClaim(in Transfer t)
    {
        if (t.Code != (ushort)TransferCode.ShareClaim) Fail(in t, "takes money out of a share pool without being a claim");
        var (ownership, holder) = ChartOfAccounts.OwnerOf(t.CreditAccountId);
        if (ownership != AccountOwnership.Principal) Fail(in t, "pays a claim to an account no holder owns");
        Book.Claim((ulong)t.DebitAccountId, holder, t.Amount);
    }

    private void OnShares(in Transfer t, ulong node)
    {
        ushort debit = CodeOf(t.DebitAccountId);
        if (debit == (ushort)AccountCode.ShareIssuance)
        {
            if (t.Code != (ushort)TransferCode.ShareIssue || CodeOf(t.CreditAccountId) != (ushort)AccountCode.ShareHolding)
                Fail(in t, "takes shares from the issuance without being the issue to a holding");
            Book.Issue(node, HolderOf(t.CreditAccountId, node, in t), t.Amount);
            return;
        }
        ulong from = HolderOf(t.DebitAccountId, node, in t);
        ulong to = HolderOf(t.CreditAccountId, node, in t);
        Book.Move(node, from, to, t.Amount);
    }

    /// <summary>The holder a share account stands for: its owner for a holding or a pledge, 0 for the escrow.</summary>
    private static ulong HolderOf(UInt128 account, ulong node, in Transfer t)
    {
        ChartOfAccounts.TryDecode(account, out ushort code, out ulong qualifier, out ulong number);
        switch ((AccountCode)code)
        {
            case AccountCode.ShareHolding or AccountCode.SharePledge when qualifier == node && number != 0:
                return number;
            case AccountCode.ShareEscrow when qualifier == t.Asset:
                return 0;
            default:
                Fail(in t, "moves shares to or from an account that is not a holding, a pledge or the escrow of the node");
                return 0;
        }
    }

    /// <summary>The chart's code of a reserved-space account id (0 for a client-space one).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort CodeOf(UInt128 account)
    {
        ulong hi = (ulong)(account >> 64);
        return (hi & ChartOfAccounts.ReservedBit) != 0 ? (ushort)((hi >> 48) & 0x7FFF) : (ushort)0;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Fail(in Transfer t, string what) =>
        throw new InvalidOperationException($"Share projection: transfer {t.Id} (code {t.Code}) {what}.");
}
