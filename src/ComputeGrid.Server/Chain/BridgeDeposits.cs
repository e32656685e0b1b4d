using ComputeGrid.Chain.Bridge;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Chain;

/// <summary>What one deposit pass did.</summary>
/// <param name="Head">The chain's head when the pass began.</param>
/// <param name="ReadFrom">The first block of the pass: the cursor, or on a new data folder the contracts' deployment block.</param>
/// <param name="ReadTo">The last block read (head − confirmations + 1), or the cursor − 1 when nothing was old enough.</param>
/// <param name="Credited">Deposits credited to the account they named.</param>
/// <param name="Suspense">Deposits credited to the suspense account (they named no account a deposit may credit).</param>
/// <param name="Duplicates">Deposits the ledger already had (a log read again): nothing moved.</param>
public sealed record DepositPass(long Head, long ReadFrom, long ReadTo, int Credited, int Suspense, int Duplicates);

/// <summary>
/// Vault deposits into the ledger, exactly once. A pass reads the <c>Deposited</c> logs from the persisted cursor up to
/// the newest block with the confirmations the chain needs (a log in a younger block is not read at all, so one a reorg
/// drops before then is never seen), checks each log's block is still the canonical one, and credits each from
/// <see cref="AccountCode.VaultCustody"/> with a transfer id derived from (vault, transaction hash, log index): a log
/// delivered twice, or read again after a crash before the cursor moved, answers <c>Exists</c> and moves nothing. The
/// cursor is written after the credits are durable. Who can be credited: a deposit names a ledger account id; a
/// customer's balance or a provider's revenue account that exists is credited (crediting someone is harmless: it adds
/// money), anything else goes to <see cref="AccountCode.ChainSuspense"/> for operators, never lost.
/// </summary>
public sealed class BridgeDeposits(ChainConnection chain, LedgerEngine ledger, BridgeStore store, BridgeOptions options, ILogger<BridgeDeposits>? log = null)
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>The account codes a deposit may credit directly.</summary>
    public static readonly IReadOnlySet<AccountCode> CreditableCodes = new HashSet<AccountCode> { AccountCode.CustomerBalance, AccountCode.ProviderRevenue };

    /// <summary>Reads and credits what is old enough; one pass at a time.</summary>
    public async Task<DepositPass> PollAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            string vault = chain.Info.Vault;
            long head = await ChainReads.HeadAsync(chain.Web3).ConfigureAwait(false);
            // A new folder starts where the contracts were deployed: no deposit is older.
            long from = store.NextBlock(vault) ?? Math.Max(options.StartBlock, chain.Info.DeployedAtBlock);
            long safe = head - chain.Confirmations + 1; // a log in block b has head − b + 1 confirmations
            long to = Math.Min(safe, checked(from + options.BlocksPerPassMax - 1));
            if (to < from) return new DepositPass(head, from, from - 1, 0, 0, 0);
            IReadOnlyList<ChainDeposit> deposits = await chain.Vault.GetDepositsAsync(from, to).ConfigureAwait(false);
            // A log whose block is no longer canonical (a reorg deeper than the confirmations, between the read and now)
            // ends the pass before it: the next pass reads that range again from the chain as it is then.
            var canonical = new Dictionary<long, string?>();
            var good = new List<ChainDeposit>();
            foreach (ChainDeposit d in deposits)
            {
                if (!canonical.TryGetValue(d.BlockNumber, out string? hash))
                    canonical[d.BlockNumber] = hash = await ChainReads.BlockHashAsync(chain.Web3, d.BlockNumber).ConfigureAwait(false);
                if (!string.Equals(hash, d.BlockHash, StringComparison.OrdinalIgnoreCase))
                {
                    log?.LogWarning("Deposit {Tx}#{Index} is in block {Block} {Hash}, no longer canonical; read again next pass", d.TransactionHash, d.LogIndex, d.BlockNumber, d.BlockHash);
                    to = d.BlockNumber - 1;
                    break;
                }
                good.Add(d);
            }
            var (credited, suspense, duplicates, records) = await CreditAsync(vault, good, ct).ConfigureAwait(false);
            store.Advance(vault, to + 1, records);
            return new DepositPass(head, from, to, credited, suspense, duplicates);
        }
        finally { _gate.Release(); }
    }

    /// <summary>
    /// Credits <paramref name="deposits"/> of <paramref name="contract"/> durably, each once whatever how often it is
    /// given (in this call or any other); returns the counts and what each became. Public so a test can deliver a log twice.
    /// </summary>
    public async Task<(int Credited, int Suspense, int Duplicates, List<(ChainDeposit, string, string)> Records)> CreditAsync(
        string contract, IReadOnlyList<ChainDeposit> deposits, CancellationToken ct = default)
    {
        var records = new List<(ChainDeposit, string, string)>();
        if (deposits.Count == 0) return (0, 0, 0, records);
        // Which named accounts exist and may be credited.
        var named = deposits.Select(d => BridgeIds.TryAccountFromBytes32(d.Account, out UInt128 a) ? a : 0).ToArray();
        Account[] found = await ledger.LookupAccountsAsync(named.Where(a => a != 0).Distinct().ToArray(), ct).ConfigureAwait(false);
        var creditable = found.Where(a => CreditableCodes.Contains((AccountCode)a.Code) && a.Asset == Asset.Usd.Code).Select(a => a.Id).ToHashSet();
        UInt128 custody = ChartOfAccounts.SystemAccount(AccountCode.VaultCustody, Asset.Usd);
        UInt128 suspenseAccount = ChartOfAccounts.SystemAccount(AccountCode.ChainSuspense, Asset.Usd);
        var transfers = new Transfer[deposits.Count];
        for (int i = 0; i < deposits.Count; i++)
        {
            ChainDeposit d = deposits[i];
            transfers[i] = new Transfer
            {
                Id = BridgeIds.DepositTransfer(contract, d.TransactionHash, d.LogIndex),
                DebitAccountId = custody,
                CreditAccountId = creditable.Contains(named[i]) ? named[i] : suspenseAccount,
                Amount = d.Amount, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.ChainDeposit, UserData64 = (ulong)d.BlockNumber,
            };
        }
        CreateTransferResult[] results = await ledger.CreateTransfersAsync(transfers, LedgerAck.Durable, ct).ConfigureAwait(false);
        int credited = 0, suspense = 0, duplicates = 0;
        for (int i = 0; i < results.Length; i++)
        {
            string to = Ids.Format(transfers[i].CreditAccountId);
            switch (results[i])
            {
                case CreateTransferResult.Ok when transfers[i].CreditAccountId == suspenseAccount:
                    suspense++;
                    records.Add((deposits[i], to, "suspense"));
                    log?.LogWarning("Deposit {Tx}#{Index} of {Amount} names {Account}, which may not be credited: held in suspense", deposits[i].TransactionHash, deposits[i].LogIndex, deposits[i].Amount, deposits[i].Account);
                    break;
                case CreateTransferResult.Ok:
                    credited++;
                    records.Add((deposits[i], to, "credited"));
                    break;
                // The same log again: credited before (perhaps to another target if the account was made in between;
                // the first credit stands). A zero amount cannot happen (the vault refuses it).
                case var r when r.ToString().StartsWith("Exists", StringComparison.Ordinal):
                    duplicates++;
                    break;
                case var r:
                    throw new InvalidOperationException($"The ledger refused the credit of deposit {deposits[i].TransactionHash}#{deposits[i].LogIndex}: {r}");
            }
        }
        return (credited, suspense, duplicates, records);
    }
}
