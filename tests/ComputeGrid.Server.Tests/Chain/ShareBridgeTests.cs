using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Chain;
using ComputeGrid.Server.Tokens;
using ComputeGrid.Tokens;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests.Chain;

/// <summary>
/// Node share tokens through the server against a real Anvil: free shares withdrawn to an address are moved to the
/// custody holder and minted once (also when the server crashed between each step and its record), deposited back
/// credited once, and the node's revenue, paid into its share pool by ledger postings before, during and after the
/// shares' trips, adds up exactly: ledger entitlements + on-chain dividends + both carries + the revenue of shares in
/// transit (paid to their withdrawer or depositor, once across restarts) + the custody holder's rounding = the node's
/// revenue, each figure checked against an independent accumulator.
/// </summary>
public sealed class ShareBridgeTests
{
    private const long Supply = 1_000;

    [Fact]
    public async Task Shares_withdrawn_are_minted_once_deposited_back_once_and_on_chain_plus_ledger_dividends_equal_the_node_revenue()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        ExchangeSeed seed = await TestServer.SeedExchangeAsync(h.Operator, ("H100", "frankfurt"));
        Party provider = seed.Provider, holder = seed.Poor, payer = seed.Buyer;
        long node = seed.Nodes[("H100", "frankfurt")];
        await ApiTestHelpers.OkAsync(await h.Operator.PostSnakeAsync($"/api/shares/issuers/{provider.Id}", new { }));
        Assert.Equal(HttpStatusCode.Created, (await provider.Http.PostSnakeAsync("/api/shares", new { node_id = node, supply = Supply })).StatusCode);
        await ApiTestHelpers.OkAsync(await provider.Http.PostSnakeAsync($"/api/shares/{node}/transfers", new { to = holder.Id, shares = 300 }));
        // The server's account pays the on-chain holders' part of each distribute.
        await h.Chain.Stablecoin.MintAsync(h.Chain.Account, 50_000_000);
        long serverBefore = await h.Chain.Stablecoin.BalanceOfAsync(h.Chain.Account);
        UInt128 holderBalance = ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, holder.Id);
        long holderCreditsBefore = (await h.Ledger.LookupAccountsAsync([holderBalance]))[0].CreditsPosted;

        // Two independent books: the ledger's (the on-chain supply is the custody holder) and the chain's (X: not on chain).
        const ulong X = 1UL << 40;
        ulong custody = ShareBridge.CustodyHolder, dev6 = 6, dev7 = 7;
        var ledgerBook = new ShareAccumulator((ulong)node, provider.Id, Supply);
        var chainBook = new ShareAccumulator((ulong)node, X, Supply);
        ledgerBook.Move(provider.Id, holder.Id, 300);
        // A fresh client of the current server (each restart listens on a new port).
        async Task<long> FreeSharesAsync()
        {
            using HttpClient c = TestServer.Client(h.Operator.BaseAddress!.ToString(), holder.Key);
            return (await c.GetJsonAsync("/api/shares/holdings")).GetProperty("holdings")[0].GetProperty("free").GetInt64();
        }
        int paidCount = 0;
        long revenueTotal = 0;
        async Task PayAsync(long amount)
        {
            var t = new Transfer
            {
                Id = ChartOfAccounts.TransferId(TransferSpace.Inference, 0xC0FFEE, (ulong)++paidCount), DebitAccountId = payer.Account,
                CreditAccountId = ChartOfAccounts.SharePool((ulong)node), Amount = amount, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.ShareRevenue,
            };
            Assert.Equal(CreateTransferResult.Ok, (await h.Ledger.CreateTransfersAsync(new[] { t }, LedgerAck.Durable))[0]);
            ledgerBook.Pay(amount);
            revenueTotal += amount;
        }

        await PayAsync(1_234_567);
        chainBook.Pay(1_234_567);

        // Withdraw 120 to dev 6: moved to custody at once; a retry is the same withdrawal; the key reused otherwise and too many are refused.
        string to = BridgeHarness.Address(6);
        HttpResponseMessage r = await ShareWithdrawAsync(holder.Http, node, 120, to, "s-1");
        Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        JsonElement w = await BridgeHarness.JsonAsync(r);
        string id = w.GetProperty("id").GetString()!;
        Assert.Equal("moved", w.GetProperty("state").GetString());
        ledgerBook.Move(holder.Id, custody, 120);
        Assert.Equal(id, (await BridgeHarness.JsonAsync(await ShareWithdrawAsync(holder.Http, node, 120, to, "s-1"))).GetProperty("id").GetString());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await ShareWithdrawAsync(holder.Http, node, 121, to, "s-1")).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await ShareWithdrawAsync(holder.Http, node, 181, to, "s-2")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await ShareWithdrawAsync(holder.Http, node + 1_000, 1, to, "s-3")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await provider.Http.GetAsync($"/api/chain/share-withdrawals/{id}")).StatusCode); // another's
        Assert.Equal(180, await FreeSharesAsync());

        // Revenue while the shares are in transit (in custody, not yet minted): the custody holder's in the ledger.
        await PayAsync(777_777);
        chainBook.Pay(777_777);

        // A crash right after the move, before its record: the row is New, the move pending and the count behind. A restart
        // finds the move applied (custody holds the count plus the move) and records it; nothing moves twice.
        await h.StopServerAsync();
        Rewind(h.Dir, $"UPDATE share_withdrawals SET state=0 WHERE id='{id}'", "UPDATE share_tokens SET custody_shares=0",
            $"DELETE FROM share_custody_moves WHERE source='{id}'", $"INSERT INTO share_custody_pending(node, source, delta) VALUES({node}, '{id}', 120)");
        await h.StartServerAsync();
        await h.Shares.ProcessAsync(); // deploy the node's token and mint: its revenue first catches up with the ledger's
        string token = h.App.Services.GetRequiredService<BridgeStore>().ShareToken(node)!;
        var tokenClient = new ShareTokenClient(h.Chain.Web3, token);
        // Its deposits are read from the block it was deployed in, not from block 0.
        long tokenFrom = h.App.Services.GetRequiredService<BridgeStore>().NextBlock(token)!.Value;
        Assert.Equal("0x", await BridgeTests.CodeAtAsync(h, token, tokenFrom - 1));
        Assert.NotEqual("0x", await BridgeTests.CodeAtAsync(h, token, tokenFrom));
        Assert.Equal(120, await tokenClient.BalanceOfAsync(to));
        Assert.Equal(revenueTotal, await tokenClient.RevenueAsync());
        chainBook.Move(X, dev6, 120);
        Assert.Equal(180, await FreeSharesAsync());

        // A crash after the mint, before its record: the row is Moved again; the resend finds the mintId used; nothing minted twice.
        await h.StopServerAsync();
        Rewind(h.Dir, $"UPDATE share_withdrawals SET state=1, tx_hash=NULL, block_number=NULL WHERE id='{id}'");
        await h.StartServerAsync();
        await h.Shares.ProcessAsync();
        Assert.Equal(120, await tokenClient.TotalSupplyAsync());
        await h.Anvil.MineAsync(BridgeHarness.Confirmations);
        await h.Shares.ProcessAsync();
        using (HttpClient c = TestServer.Client(h.Operator.BaseAddress!.ToString(), holder.Key))
            Assert.Equal("minted", (await c.GetFromJsonElementAsync($"/api/chain/share-withdrawals/{id}")).GetProperty("state").GetString());
        // The token is public in GET /api/chain.
        using (HttpClient anonymous = TestServer.Client(h.Operator.BaseAddress!.ToString(), null))
            Assert.Equal(token, (await anonymous.GetJsonAsync("/api/chain")).GetProperty("shareTokens").GetProperty(node.ToString(System.Globalization.CultureInfo.InvariantCulture)).GetString());

        await PayAsync(2_000_003);
        chainBook.Pay(2_000_003);
        await h.Shares.DistributeAsync();
        Assert.Equal(revenueTotal, await tokenClient.RevenueAsync());

        // On chain: dev 6 gives 20 to dev 7 and deposits 50 back to the holder's account; revenue arrives before the server reads the burn.
        var dev6Token = new ShareTokenClient(h.Wallet(6), token);
        await dev6Token.TransferAsync(BridgeHarness.Address(7), 20);
        chainBook.Move(dev6, dev7, 20);
        // The holder's customer balance names it (as GET /api/chain/deposit-account gives it).
        await dev6Token.DepositAsync(50, BridgeHarness.Bytes32(holderBalance));
        chainBook.Move(dev6, X, 50);
        await PayAsync(555_555);
        chainBook.Pay(555_555);
        Assert.Equal(0, await h.Shares.PollDepositsAsync()); // not yet confirmed
        await h.Anvil.MineAsync(BridgeHarness.Confirmations);
        long creditedShares = await h.Shares.PollDepositsAsync();
        ShareDepositRow deposited = Assert.Single(h.App.Services.GetRequiredService<BridgeStore>().ShareDepositsOf(node));
        Assert.Equal(BridgeHarness.Bytes32(holderBalance), deposited.Account);
        Assert.Equal((holder.Id, "credited", 50L), (deposited.Holder, deposited.State, deposited.Shares));
        Assert.Equal(50, creditedShares);
        ledgerBook.Move(custody, holder.Id, 50);
        Assert.Equal(0, await h.Shares.PollDepositsAsync());
        Assert.Equal(230, await FreeSharesAsync());

        // A crash after the credit, before its record (and before its transit was closed and paid): the row is new again,
        // the move pending and the count behind; the restart credits nothing twice and pays the transit once.
        await h.StopServerAsync();
        Rewind(h.Dir, "UPDATE share_deposits SET state='new'", "UPDATE share_tokens SET custody_shares=custody_shares+50",
            $"INSERT INTO share_custody_pending(node, source, delta) SELECT node, source, delta FROM share_custody_moves WHERE source LIKE 'deposit:%'",
            "DELETE FROM share_custody_moves WHERE source LIKE 'deposit:%'",
            "UPDATE share_transit SET revenue_from=NULL, revenue_to=NULL, units=NULL, amount=NULL, paid=0 WHERE source LIKE 'deposit:%'");
        await h.StartServerAsync();
        Assert.Equal(50, await h.Shares.PollDepositsAsync()); // recorded, not moved again
        Assert.Equal(230, await FreeSharesAsync());
        Assert.Equal(0, await h.Shares.PollDepositsAsync());

        await PayAsync(999_999);
        chainBook.Pay(999_999);
        await h.Shares.DistributeAsync();
        await h.Shares.DistributeAsync(); // again: nothing more
        Assert.Equal(revenueTotal, await tokenClient.RevenueAsync());

        // The ledger's entitlements are the independent ledger book's.
        ShareRevenue revenue = h.App.Services.GetRequiredService<ShareRevenue>();
        long Ledger(ulong who) => revenue.EntitlementAsync((ulong)node, who, CancellationToken.None).GetAwaiter().GetResult()!.Entitled;
        foreach (ulong who in new[] { provider.Id, holder.Id, custody }) Assert.Equal(ledgerBook.Entitlement(who), Ledger(who));
        // The chain's dividends are the independent chain book's.
        long onChain6 = await tokenClient.AccumulativeDividendOfAsync(BridgeHarness.Address(6)), onChain7 = await tokenClient.AccumulativeDividendOfAsync(BridgeHarness.Address(7));
        Assert.Equal((chainBook.Entitlement(dev6), chainBook.Entitlement(dev7)), (onChain6, onChain7));
        Assert.Equal(onChain6, await tokenClient.WithdrawableDividendOfAsync(BridgeHarness.Address(6)));

        // The custody holder claimed what the token pulled (it left the server's stablecoin account) and the transits.
        long pulled = await tokenClient.PulledAsync();
        Entitlement custodyEntitlement = (await revenue.EntitlementAsync((ulong)node, custody, CancellationToken.None))!;
        Assert.Equal(pulled, await h.Chain.Stablecoin.BalanceOfAsync(token));
        Assert.Equal(serverBefore - pulled, await h.Chain.Stablecoin.BalanceOfAsync(h.Chain.Account));
        Account dividends = (await h.Ledger.LookupAccountsAsync([ShareBridge.CustodyBalance]))[0];

        // The revenue of the shares in transit (120 from their move to custody to the mint, during 777,777; 50 from the
        // burn to their move out, during 555,555) went to the holder through the ledger, floored over both like one n.
        IReadOnlyList<TransitRow> transits = h.App.Services.GetRequiredService<BridgeStore>().TransitsOf(node);
        Assert.Equal([(id, 120L * 777_777 / Supply), (transits.Single(t => t.Source.StartsWith("deposit:", StringComparison.Ordinal)).Source, 121_110L - 93_333)],
            transits.OrderBy(t => t.Shares == 120 ? 0 : 1).Select(t => (t.Source, t.Amount!.Value)));
        Assert.All(transits, t => Assert.True(t.Paid && t.Principal == holder.Id));
        long transitPaid = (120 * 777_777 + 50 * 555_555) / Supply;
        Assert.Equal(121_110, transitPaid);
        Assert.Equal(holderCreditsBefore + transitPaid, (await h.Ledger.LookupAccountsAsync([holderBalance]))[0].CreditsPosted);
        Assert.Equal(pulled + transitPaid, custodyEntitlement.Claimed);
        Assert.Equal((pulled + transitPaid, pulled + transitPaid), (dividends.CreditsPosted, dividends.DebitsPosted));

        // The sum, to the micro-unit: what the custody holder still is owed is the rounding of two floors only.
        long onChainCarry = pulled - onChain6 - onChain7;
        Assert.InRange(onChainCarry, 0, 1);
        long custodyLeft = custodyEntitlement.Owed;
        Assert.InRange(custodyLeft, 0, 1);
        long ledgerHolders = Ledger(provider.Id) + Ledger(holder.Id);
        Assert.Equal(revenueTotal, ledgerHolders + onChain6 + onChain7 + onChainCarry + transitPaid + custodyLeft + ledgerBook.Carry());
        Assert.Equal(revenueTotal, (await revenue.PoolAsync((ulong)node, CancellationToken.None))!.Revenue);
    }

    [Fact]
    public async Task A_move_applied_before_a_crash_is_recorded_as_its_own_even_when_another_withdrawal_of_the_same_size_comes_first()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        ExchangeSeed seed = await TestServer.SeedExchangeAsync(h.Operator, ("H100", "frankfurt"));
        Party provider = seed.Provider, holder = seed.Poor;
        long node = seed.Nodes[("H100", "frankfurt")];
        await ApiTestHelpers.OkAsync(await h.Operator.PostSnakeAsync($"/api/shares/issuers/{provider.Id}", new { }));
        Assert.Equal(HttpStatusCode.Created, (await provider.Http.PostSnakeAsync("/api/shares", new { node_id = node, supply = Supply })).StatusCode);
        await ApiTestHelpers.OkAsync(await provider.Http.PostSnakeAsync($"/api/shares/{node}/transfers", new { to = holder.Id, shares = 300 }));

        // The holder's 10 moved to custody, then a crash before the record: the move is pending, the count behind.
        HttpResponseMessage first = await ShareWithdrawAsync(holder.Http, node, 10, BridgeHarness.Address(6), "a");
        string a = (await BridgeHarness.JsonAsync(first)).GetProperty("id").GetString()!;
        await h.StopServerAsync();
        Rewind(h.Dir, $"UPDATE share_withdrawals SET state=0 WHERE id='{a}'", "UPDATE share_tokens SET custody_shares=0",
            $"DELETE FROM share_custody_moves WHERE source='{a}'", $"INSERT INTO share_custody_pending(node, source, delta) VALUES({node}, '{a}', 10)");
        await h.StartServerAsync();

        // The provider's withdrawal of the same 10 arrives first: custody at the count + 10 is the holder's pending move,
        // recorded as such; the provider's 10 then move too. (Read by size alone, the provider's would pass as done.)
        using HttpClient providerNow = TestServer.Client(h.Operator.BaseAddress!.ToString(), provider.Key); // the restart listens on a new port
        HttpResponseMessage second = await ShareWithdrawAsync(providerNow, node, 10, BridgeHarness.Address(7), "b");
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        string b = (await BridgeHarness.JsonAsync(second)).GetProperty("id").GetString()!;
        await h.Shares.ProcessAsync();
        BridgeStore store = h.App.Services.GetRequiredService<BridgeStore>();
        Assert.Equal((10L, 10L), (store.CustodyMoveOf(a)!.Delta, store.CustodyMoveOf(b)!.Delta));
        Assert.Equal(20, store.CustodyShares(node));
        Assert.Equal(20, await ShareHoldingAsync(h, ShareBridge.CustodyHolder, node));
        Assert.Equal(290, await ShareHoldingAsync(h, holder.Id, node));
        Assert.Equal(690, await ShareHoldingAsync(h, provider.Id, node));
        Assert.Null(store.PendingCustodyMove(node));
    }

    private static Task<long> ShareHoldingAsync(BridgeHarness h, ulong who, long node) =>
        h.App.Services.GetRequiredService<ComputeGrid.Exchange.Pipeline.ExchangeHost>().ReadAsync(v => v.HoldingOf((long)who, node).Total, CancellationToken.None);

    private static async Task<HttpResponseMessage> ShareWithdrawAsync(HttpClient who, long node, long shares, string to, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/chain/share-withdrawals") { Content = JsonContent.Create(new { node, shares, to }, options: TestServer.Json) };
        request.Headers.Add("Idempotency-Key", key);
        return await who.SendAsync(request);
    }

    // Sets the bridge store back as a crash between an act and its record would have left it.
    private static void Rewind(string dir, params string[] statements)
    {
        using var db = new SqliteConnection($"Data Source={BridgeStore.PathIn(dir)};Pooling=False");
        db.Open();
        foreach (string sql in statements)
        {
            using SqliteCommand c = db.CreateCommand();
            c.CommandText = sql;
            c.ExecuteNonQuery();
        }
    }
}
