using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Trust;

/// <summary>What became of a funding.</summary>
public enum FundOutcome
{
    /// <summary>The money moved now.</summary>
    Funded,
    /// <summary>The same funding (same id, amount and operator) was done before: nothing moved again.</summary>
    Replayed,
    /// <summary>The funding id was used before for a different amount, account or operator.</summary>
    Conflict,
    /// <summary>The account does not exist.</summary>
    NoAccount,
}

/// <summary>
/// The ledger side of principals: the chart's accounts each kind owns (created with the principal), the system
/// accounts, and operator funding from the treasury. A funding's transfer id is derived from its client-chosen
/// funding id, so a retried call moves the money once; its <c>user_data_64</c> is the operator who did it.
/// </summary>
public sealed class PrincipalLedger(LedgerEngine ledger)
{
    /// <summary>The ledger the accounts live in.</summary>
    public LedgerEngine Ledger => ledger;

    /// <summary>The accounts a principal of <paramref name="kind"/> owns, by code.</summary>
    public static IReadOnlyList<AccountCode> CodesOf(PrincipalKind kind) => kind switch
    {
        PrincipalKind.Customer => [AccountCode.CustomerBalance],
        PrincipalKind.Provider => [AccountCode.ProviderRevenue, AccountCode.ProviderCollateral],
        PrincipalKind.Node => [AccountCode.NodeRevenue],
        _ => [],
    };

    /// <summary>The ids of the accounts a principal owns.</summary>
    public static IReadOnlyList<UInt128> AccountsOf(Principal p) => CodesOf(p.Kind).Select(c => ChartOfAccounts.PrincipalAccount(c, p.Id)).ToArray();

    /// <summary>Whether <paramref name="caller"/> may read account <paramref name="account"/>: operators all, others their own.</summary>
    public static bool MayRead(CallerIdentity caller, UInt128 account) =>
        caller.Principal.Kind == PrincipalKind.Operator
        || ChartOfAccounts.OwnerOf(account) is (AccountOwnership.Principal, var owner) && owner == caller.Principal.Id;

    /// <summary>Creates every system account of the chart (idempotent).</summary>
    public async Task EnsureSystemAccountsAsync(CancellationToken ct = default)
    {
        Account[] accounts = ChartOfAccounts.Accounts.Where(k => k.Ownership == AccountOwnership.System)
            .Select(k => ChartOfAccounts.NewAccount(k.Code, ChartOfAccounts.SystemAccount(k.Code, Asset.Usd), Asset.Usd)).ToArray();
        CreateAccountResult[] r = await ledger.CreateAccountsAsync(accounts, ct);
        if (r.Any(x => x is not (CreateAccountResult.Ok or CreateAccountResult.Exists)))
            throw new InvalidOperationException("Cannot create the system accounts: " + string.Join(", ", r));
    }

    /// <summary>Creates the accounts a principal owns (idempotent); they are durable when this returns.</summary>
    public async Task CreateAccountsAsync(Principal p, CancellationToken ct = default)
    {
        Account[] accounts = CodesOf(p.Kind).Select(c => ChartOfAccounts.NewAccount(c, ChartOfAccounts.PrincipalAccount(c, p.Id), Asset.Usd)).ToArray();
        if (accounts.Length == 0) return;
        CreateAccountResult[] r = await ledger.CreateAccountsAsync(accounts, ct);
        if (r.Any(x => x is not (CreateAccountResult.Ok or CreateAccountResult.Exists)))
            throw new InvalidOperationException($"Cannot create the accounts of principal {p.Id}: " + string.Join(", ", r));
    }

    /// <summary>The funding's transfer id: the same target, account and funding id always name the same transfer.</summary>
    public static UInt128 FundingId(ulong principal, AccountCode code, string fundingId)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes($"fund\n{principal}\n{(ushort)code}\n{fundingId}"), hash);
        return ChartOfAccounts.TransferId(TransferSpace.Funding, BinaryPrimitives.ReadUInt64LittleEndian(hash) & ChartOfAccounts.QualifierMax,
            BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]));
    }

    /// <summary>Moves <paramref name="amount"/> (USDC micro-units) from the treasury to a principal's account, once per funding id.</summary>
    public async Task<(FundOutcome Outcome, UInt128 TransferId)> FundAsync(Principal target, AccountCode code, long amount, string fundingId, ulong operatorId, CancellationToken ct = default)
    {
        UInt128 id = FundingId(target.Id, code, fundingId);
        CreateTransferResult[] r = await ledger.CreateTransfersAsync(new[]
        {
            new Transfer
            {
                Id = id, DebitAccountId = ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd), CreditAccountId = ChartOfAccounts.PrincipalAccount(code, target.Id),
                Amount = amount, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.Funding, UserData64 = operatorId,
            },
        }, ct);
        return (r[0] switch
        {
            CreateTransferResult.Ok => FundOutcome.Funded,
            CreateTransferResult.Exists => FundOutcome.Replayed,
            CreateTransferResult.CreditAccountNotFound => FundOutcome.NoAccount,
            _ when r[0].ToString().StartsWith("ExistsWith", StringComparison.Ordinal) => FundOutcome.Conflict,
            var other => throw new InvalidOperationException($"The ledger refused the funding: {other}"),
        }, id);
    }

    /// <summary>The accounts of a principal as they are now (missing ones left out).</summary>
    public async Task<Account[]> BalancesAsync(Principal p, CancellationToken ct = default) =>
        await ledger.LookupAccountsAsync(AccountsOf(p), ct);
}
