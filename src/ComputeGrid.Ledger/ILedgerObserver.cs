namespace ComputeGrid.Ledger;

/// <summary>
/// Sees every transfer that changed posted balances, once, after it committed: a read model (the node shares'
/// revenue accumulator) kept in step with the ledger without a second write path.
/// <para>
/// <see cref="LedgerStateMachine"/> calls it at the end of each <see cref="LedgerStateMachine.CreateTransfers"/>
/// batch, for the batch's stored transfers in timestamp order, so a linked chain that failed (and was rolled back)
/// is never seen. Pending holds and voids are not seen (they change no posted balance); a post of a pending
/// transfer is seen with its resolved accounts, asset, code and posted amount. Expiry changes no posted balance.
/// </para>
/// <para>
/// Calls run on the ledger's single writer thread: an observer must be quick, allocate nothing in steady state and
/// never call back into the ledger. An exception from it means a broken invariant (a bug): the batch is already
/// committed and the exception reaches the caller of <c>CreateTransfers</c>.
/// </para>
/// </summary>
public interface ILedgerObserver
{
    /// <summary>One committed transfer that changed posted balances (<see cref="LedgerStateMachine.IsPosting"/>).</summary>
    void OnPosted(in Transfer transfer);
}
