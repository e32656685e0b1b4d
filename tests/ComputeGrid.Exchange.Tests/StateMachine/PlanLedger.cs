using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>A command's settlement plan applied to a real <see cref="LedgerStateMachine"/>: every account and transfer must be taken.</summary>
internal static class PlanLedger
{
    /// <summary>Applies <paramref name="plan"/>'s accounts (new, or existing already) and transfers (each Ok), then the ledger's invariants.</summary>
    public static void Apply(LedgerStateMachine ledger, SettlementPlan plan)
    {
        if (plan.Accounts.Length > 0)
        {
            var ar = new CreateAccountResult[plan.Accounts.Length];
            ledger.CreateAccounts(plan.Accounts, ledger.LastTimestamp + 1, ar);
            Assert.All(ar, x => Assert.True(x is CreateAccountResult.Ok or CreateAccountResult.Exists, x.ToString()));
        }
        if (plan.Transfers.Length > 0)
        {
            var tr = new CreateTransferResult[plan.Transfers.Length];
            ledger.CreateTransfers(plan.Transfers, ledger.LastTimestamp + 1, tr);
            Assert.All(tr, x => Assert.Equal(CreateTransferResult.Ok, x));
        }
        ledger.AssertInvariants();
    }
}
