using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace ComputeGrid.Exchange.Tests.Pipeline;

/// <summary>
/// The pipeline over a real journal and ledger writes snapshots every few hundred commands; a start restores the newest
/// and replays only the journal after it: the same state as a full replay of the same journal, the ledger unchanged by
/// the resubmission, and trading goes on. A damaged newest snapshot is refused and the one before it used.
/// </summary>
public sealed class PipelineSnapshotTests(ITestOutputHelper output) : IDisposable
{
    private const long Buyer = 1, Provider = 100;
    private static readonly UInt128 Funding = 1_000, BuyerWallet = 1_001, Revenue = 1_100, Collateral = 1_101;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-pipeline-snapshots-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private string Journal => Path.Combine(_dir, "exchange.journal");

    private static ExchangeStateMachine NewMachine() =>
        new(new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default)), new StateMachineOptions { Epoch = 7, OrdersPerBookMax = 256 });

    private Task<ExchangePipeline> StartAsync(LedgerEngine ledger, long every, string? folder = null) =>
        ExchangePipeline.StartAsync(NewMachine(), ledger, Journal, _time, new PipelineOptions { SnapshotEveryCommands = every, SnapshotFolder = folder, Rebuild = NewMachine });

    private async Task<LedgerEngine> LedgerAsync()
    {
        LedgerEngine ledger = LedgerEngine.Open(new LedgerEngineOptions(), _time);
        Account[] accounts =
        [
            new() { Id = Funding, Asset = 1, Code = 1 },
            new() { Id = BuyerWallet, Asset = 1, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new() { Id = Revenue, Asset = 1, Code = 3, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new() { Id = Collateral, Asset = 1, Code = 4, Flags = AccountFlags.DebitsMustNotExceedCredits },
        ];
        Assert.All(await ledger.CreateAccountsAsync(accounts), r => Assert.Equal(CreateAccountResult.Ok, r));
        Transfer[] fund =
        [
            new() { Id = 1, DebitAccountId = Funding, CreditAccountId = BuyerWallet, Amount = 100_000_000_000, Asset = 1, Code = 1 },
            new() { Id = 2, DebitAccountId = Funding, CreditAccountId = Collateral, Amount = 500_000_000, Asset = 1, Code = 1 },
        ];
        Assert.All(await ledger.CreateTransfersAsync(fund), r => Assert.Equal(CreateTransferResult.Ok, r));
        return ledger;
    }

    private static async Task SetUpAsync(ExchangePipeline p)
    {
        Assert.True((await p.SubmitAsync(ExchangeCommand.Tick())).Result.Ok);
        Assert.True((await p.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = Buyer })).Result.Ok);
        Assert.True((await p.SubmitAsync(new ExchangeCommand
        {
            Kind = ExchangeCommandKind.RegisterProvider, Owner = Provider, Account = Revenue, Account2 = Collateral, Amount = 500_000_000,
        })).Result.Ok);
        Assert.True((await p.SubmitAsync(new ExchangeCommand
        {
            Kind = ExchangeCommandKind.AdmitNode, Owner = Provider, Gpus = 512, Gpu = GpuClass.H100, Region = "frankfurt", Name = "fra-01",
        })).Result.Ok);
        Assert.True((await p.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = Buyer, Account = BuyerWallet, Amount = 2_000_000_000 })).Result.Ok);
    }

    /// <summary>Rounds of 8–24 commands submitted together (batches of several): buys, sells, cancels, replaces, deposits, ticks, the clock moving.</summary>
    private async Task<int> TradeAsync(ExchangePipeline p, Random rng, int rounds)
    {
        int ok = 0;
        for (int round = 0; round < rounds; round++)
        {
            _time.Advance(TimeSpan.FromSeconds(rng.Next(1, 60)));
            long now = Core.Clock.UnixNanoseconds(_time);
            int[] instruments = await p.ReadAsync(sm => sm.Instruments.Active
                .Where(i => i.Gpu == GpuClass.H100 && i.Region == "frankfurt" && i.Kind == DeliveryKind.HourlySpot && i.IsTradingAt(now)).Take(4).Select(i => i.Id).ToArray());
            long[] open = await p.ReadAsync(sm => sm.OpenOrders().Select(o => o.OrderId).ToArray());
            long[] owners = await p.ReadAsync(sm => sm.OpenOrders().Select(o => o.Owner).ToArray());
            var commands = new List<ExchangeCommand>();
            for (int n = rng.Next(8, 25); n > 0; n--)
            {
                int instrument = instruments[rng.Next(instruments.Length)];
                long price = 1_800_000 + 50_000 * rng.Next(12);
                int roll = rng.Next(100);
                if (roll < 40)
                {
                    TimeInForce tif = rng.Next(10) switch { 0 => TimeInForce.ImmediateOrCancel, 1 => TimeInForce.GoodTillTime, _ => TimeInForce.GoodTillCancel };
                    ExchangeCommand buy = ExchangeCommand.Place(Buyer, instrument, Side.Buy, OrderType.Limit, tif, price, rng.Next(1, 5));
                    if (tif == TimeInForce.GoodTillTime) buy.ExpiresAt = now + rng.Next(30, 600) * 1_000_000_000L;
                    commands.Add(buy);
                }
                else if (roll < 72) commands.Add(ExchangeCommand.Place(Provider, instrument, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, price + 100_000, rng.Next(1, 4)));
                else if (roll < 84 && open.Length > 0)
                {
                    int k = rng.Next(open.Length);
                    commands.Add(ExchangeCommand.Cancel(owners[k], open[k]));
                }
                else if (roll < 92 && open.Length > 0)
                {
                    int k = rng.Next(open.Length);
                    commands.Add(new ExchangeCommand { Kind = ExchangeCommandKind.Replace, Owner = owners[k], Target = open[k], Price = price, Quantity = rng.Next(1, 4) });
                }
                else if (roll < 97) commands.Add(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = Buyer, Account = BuyerWallet, Amount = 50_000_000 });
                else commands.Add(ExchangeCommand.Tick());
            }
            var pending = commands.Select(c => p.SubmitAsync(c).AsTask()).ToArray();
            foreach (CommandOutcome o in await Task.WhenAll(pending)) if (o.Result.Ok) ok++;
        }
        return ok;
    }

    [Fact]
    public async Task A_start_from_a_snapshot_and_the_journal_after_it_equals_a_full_replay_and_trading_goes_on()
    {
        await using LedgerEngine ledger = await LedgerAsync();
        var rng = new Random(42);
        string folder = ExchangePipeline.SnapshotFolderOf(Journal, new PipelineOptions());
        byte[] first;
        int ok;
        await using (ExchangePipeline p = await StartAsync(ledger, every: 150))
        {
            Assert.Null(p.Restored.File);
            await SetUpAsync(p);
            ok = await TradeAsync(p, rng, 60);
            first = await p.ReadAsync(sm => sm.StateHash());
            await p.ReadAsync(sm => { sm.CheckInvariants(); return 0; });
        }
        IReadOnlyList<string> files = SnapshotStore.Files(folder);
        Assert.Equal(SnapshotStore.SnapshotsKept, files.Count);
        output.WriteLine($"{ok} commands accepted; snapshots {string.Join(", ", files.Select(Path.GetFileName))}");

        // From the newest snapshot (no new ones this run): the same state; trading goes on.
        byte[] second;
        ulong restoredAt;
        await using (ExchangePipeline p = await StartAsync(ledger, every: 0))
        {
            Assert.Equal(files[0], p.Restored.File);
            Assert.Empty(p.Restored.Refused);
            restoredAt = p.Restored.LastSeq;
            Assert.Equal(first, await p.ReadAsync(sm => sm.StateHash()));
            Assert.True(await TradeAsync(p, rng, 10) > 0);
            second = await p.ReadAsync(sm => sm.StateHash());
        }
        Assert.Equal(files, SnapshotStore.Files(folder));

        // Again from it, now with a tail of at least the 10 rounds: the same state; resubmitting the tail's last batches
        // changes no balance.
        UInt128[] watched = [ExchangeStateMachine.TradingAccount(Buyer), ExchangeStateMachine.EscrowAccount, Collateral, Revenue];
        Account[] before = await ledger.LookupAccountsAsync(watched);
        ulong lastSeq;
        await using (ExchangePipeline p = await StartAsync(ledger, every: 150))
        {
            Assert.Equal(restoredAt, p.Restored.LastSeq);
            lastSeq = await p.ReadAsync(sm => sm.LastSeq);
            Assert.True(lastSeq > restoredAt + 100, $"a tail of {lastSeq - restoredAt} commands");
            Assert.Equal(second, await p.ReadAsync(sm => sm.StateHash()));
            await p.ReadAsync(sm => { sm.CheckInvariants(); return 0; });
            Account[] after = await ledger.LookupAccountsAsync(watched);
            for (int i = 0; i < watched.Length; i++)
            {
                Assert.Equal(before[i].DebitsPosted, after[i].DebitsPosted);
                Assert.Equal(before[i].CreditsPosted, after[i].CreditsPosted);
                Assert.Equal(before[i].DebitsPending, after[i].DebitsPending);
                Assert.Equal(before[i].CreditsPending, after[i].CreditsPending);
            }
        }

        // The whole journal without snapshots: the same state.
        await using (ExchangePipeline p = await StartAsync(ledger, every: 0, folder: Path.Combine(_dir, "no-snapshots")))
        {
            Assert.Null(p.Restored.File);
            Assert.Equal(second, await p.ReadAsync(sm => sm.StateHash()));
        }

        // A damaged newest snapshot: refused (and said so), the one before it restored, the same state.
        byte[] bytes = await File.ReadAllBytesAsync(files[0]);
        bytes[^5] ^= 0x40;
        await File.WriteAllBytesAsync(files[0], bytes);
        await using (ExchangePipeline p = await StartAsync(ledger, every: 0))
        {
            Assert.Equal(files[1], p.Restored.File);
            Assert.Contains(files[0], Assert.Single(p.Restored.Refused));
            Assert.True(p.Restored.LastSeq < restoredAt);
            Assert.Equal(second, await p.ReadAsync(sm => sm.StateHash()));
        }
    }
    [Fact]
    public async Task A_byte_flipped_before_the_snapshot_position_stops_the_exchange_after_the_start_and_refuses_every_later_start()
    {
        await using LedgerEngine ledger = await LedgerAsync();
        var rng = new Random(9);
        string folder = ExchangePipeline.SnapshotFolderOf(Journal, new PipelineOptions());
        byte[] hash;
        await using (ExchangePipeline p = await StartAsync(ledger, every: 150))
        {
            await SetUpAsync(p);
            await TradeAsync(p, rng, 30);
            hash = await p.ReadAsync(sm => sm.StateHash());
        }
        string newest = SnapshotStore.Files(folder)[0];
        byte[] good = await File.ReadAllBytesAsync(Journal);
        byte[] damaged = (byte[])good.Clone();
        damaged[40] ^= 1; // the first record's chain hash: long before the snapshot's position
        await File.WriteAllBytesAsync(Journal, damaged);
        string marker = ExchangePipeline.PrefixMarkerOf(Journal);

        // The start reads only the snapshot and the journal after it, both whole: it starts; the check of the prefix,
        // once it runs, finds the record and stops the exchange.
        await using (ExchangePipeline p = await StartAsync(ledger, every: 0))
        {
            Assert.Equal(newest, p.Restored.File);
            var e = await Assert.ThrowsAsync<JournalCorruptException>(() => p.PrefixCheck);
            Assert.Equal(0, e.Offset);
            Assert.Same(e, p.Fault);
            await Assert.ThrowsAsync<ExchangeUnavailableException>(async () => await p.SubmitAsync(ExchangeCommand.Tick()));
        }
        Assert.True(File.Exists(marker));
        Assert.True(File.ReadAllBytes(Journal).AsSpan().SequenceEqual(damaged), "the journal changed");

        // Every later start refuses, at the same record, saying which file to remove once repaired.
        var again = await Assert.ThrowsAsync<JournalCorruptException>(() => StartAsync(ledger, every: 0));
        Assert.Equal(0, again.Offset);
        Assert.Contains(marker, again.Message);

        // Checked before the start returns (the option off): refused by the start itself, and no marker is left.
        File.Delete(marker);
        var now = await Assert.ThrowsAsync<JournalCorruptException>(() => ExchangePipeline.StartAsync(NewMachine(), ledger, Journal, _time,
            new PipelineOptions { SnapshotEveryCommands = 0, Rebuild = NewMachine, CheckPrefixInBackground = false }));
        Assert.Equal(0, now.Offset);
        Assert.False(File.Exists(marker));

        // The journal repaired: the check passes and the exchange runs on, in the state it had.
        await File.WriteAllBytesAsync(Journal, good);
        await using (ExchangePipeline p = await StartAsync(ledger, every: 0))
        {
            await p.PrefixCheck;
            Assert.Null(p.Fault);
            Assert.Equal(hash, await p.ReadAsync(sm => sm.StateHash()));
            Assert.True((await p.SubmitAsync(ExchangeCommand.Tick())).Result.Ok);
        }
    }
}
