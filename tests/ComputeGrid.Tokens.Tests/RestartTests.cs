using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Tokens.Tests;

/// <summary>The book is a function of the ledger alone: after a restart of the durable ledger it is rebuilt, equal.</summary>
public sealed class RestartTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-tokens-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task The_book_rebuilt_after_a_restart_of_the_durable_ledger_equals_the_one_kept_live()
    {
        const ulong node = 77, issuer = 1;
        var options = new LedgerEngineOptions { DataDirectory = _dir, SnapshotEveryOps = 7, SnapshotLogBytesMin = 0 };
        var live = new ShareRegistry();
        string liveBook;
        await using (var engine = LedgerEngine.Open(options))
        {
            await engine.ReadAsync(sm => sm.Observer = new ShareLedgerProjection(live));
            UInt128 treasury = ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd);
            var accounts = new List<Account>
            {
                ChartOfAccounts.NewAccount(AccountCode.Treasury, treasury, Asset.Usd),
                ChartOfAccounts.NewAccount(AccountCode.NodeRevenue, TokenWorld.Payer(node), Asset.Usd),
            };
            accounts.AddRange(TokenTransfers.IssuanceAccounts(node, issuer));
            for (ulong h = 1; h <= 5; h++)
            {
                if (h > 1) accounts.AddRange(TokenTransfers.HolderAccounts(h, node));
                accounts.Add(ChartOfAccounts.NewAccount(AccountCode.CustomerBalance, ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, h), Asset.Usd));
            }
            Assert.All(await engine.CreateAccountsAsync(accounts.ToArray()), r => Assert.Equal(CreateAccountResult.Ok, r));
            await Ok(engine,
                TokenTransfers.Issue(node, issuer, 1_000_003),
                new Transfer { Id = 1, DebitAccountId = treasury, CreditAccountId = TokenWorld.Payer(node), Amount = 1_000_000_000_000, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.Funding });
            var rng = new Random(77);
            ulong key = 1;
            for (int step = 0; step < 60; step++)
            {
                ulong h = (ulong)rng.Next(2, 6);
                await Ok(engine, TokenTransfers.Revenue(key++, TokenWorld.Payer(node), node, rng.Next(1, 5_000_000)));
                if (step % 3 == 0) await Ok(engine, TokenTransfers.ShareTransfer(key++, node, issuer, h, rng.Next(1, 10_000)));
                if (step % 5 == 4)
                {
                    long owed = await engine.ReadAsync(_ => live.Owed(node, h));
                    if (owed > 0) await Ok(engine, TokenTransfers.Claim(key++, node, h, owed));
                }
            }
            liveBook = await engine.ReadAsync(_ => BookFingerprint.Of(live));
        }

        await using (var engine = LedgerEngine.Open(options))
        {
            Assert.True(engine.Recovery.SnapshotLoaded);
            var rebuilt = new ShareRegistry();
            await engine.ReadAsync(sm => ShareLedgerProjection.Rebuild(sm, rebuilt));
            Assert.Equal(liveBook, await engine.ReadAsync(_ => BookFingerprint.Of(rebuilt)));
            // The rebuilt projection is attached: it keeps in step with what comes next.
            await Ok(engine, TokenTransfers.Revenue(10_000, TokenWorld.Payer(node), node, 9));
            Assert.Equal(9 + live.Revenue(node), await engine.ReadAsync(_ => rebuilt.Revenue(node)));
        }
    }

    private static async Task Ok(LedgerEngine engine, params Transfer[] transfers) =>
        Assert.All(await engine.CreateTransfersAsync(transfers), r => Assert.Equal(CreateTransferResult.Ok, r));
}
