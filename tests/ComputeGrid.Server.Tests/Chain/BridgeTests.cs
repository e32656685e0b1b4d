using System.Net;
using System.Text.Json;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Chain;

namespace ComputeGrid.Server.Tests.Chain;

/// <summary>
/// The bridge against a real Anvil: deposits credited once after the confirmations (not before, not twice, never after
/// a reorg dropped them), withdrawals held, paid once by the vault and posted after the confirmations (also across a
/// crash between the payment and its record), and the ownership rules of the routes.
/// </summary>
public sealed class BridgeTests
{
    [Fact]
    public async Task A_deposit_is_credited_after_its_confirmations_and_not_before_and_custody_holds_what_the_vault_holds()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        Party alice = await TestServer.NewCustomerAsync(h.Operator, "alice");

        // The caller learns the bytes32 naming its own account from the API.
        JsonElement where = await alice.Http.GetFromJsonElementAsync("/api/chain/deposit-account");
        Assert.Equal(h.Chain.Info.Vault, where.GetProperty("vault").GetString());
        string named = where.GetProperty("account_hex").GetString()!;
        Assert.Equal(BridgeHarness.Bytes32(alice.Account), named);

        ChainReceipt deposit = await h.DepositAsync(1, 7_250_000, named);
        // One confirmation (its own block): not read yet.
        DepositPass early = await h.Deposits.PollAsync();
        Assert.Equal(0, early.Credited);
        Assert.Equal(0, await h.CreditBalanceAsync(alice.Account));
        await h.Anvil.MineAsync(BridgeHarness.Confirmations - 2);
        Assert.Equal(0, (await h.Deposits.PollAsync()).Credited);
        Assert.Equal(0, await h.CreditBalanceAsync(alice.Account));

        // The third confirmation: credited, exactly the amount, and custody's debit balance is the vault's stablecoin.
        await h.Anvil.MineAsync(1);
        DepositPass pass = await h.Deposits.PollAsync();
        Assert.Equal(1, pass.Credited);
        Assert.True(pass.ReadTo >= deposit.BlockNumber);
        Assert.Equal(7_250_000, await h.CreditBalanceAsync(alice.Account));
        Account custody = await h.SystemAccountAsync(AccountCode.VaultCustody);
        Assert.Equal(await h.Chain.Stablecoin.BalanceOfAsync(h.Chain.Info.Vault), custody.DebitsPosted - custody.CreditsPosted);

        // Later passes read nothing again.
        await h.Anvil.MineAsync(5);
        Assert.Equal(new DepositPass(pass.Head + 5, pass.ReadTo + 1, pass.ReadTo + 5, 0, 0, 0), await h.Deposits.PollAsync());
        Assert.Equal(7_250_000, await h.CreditBalanceAsync(alice.Account));
    }

    [Fact]
    public async Task A_new_data_folder_reads_deposits_from_the_contracts_deployment_block_not_from_block_0()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync(blocksBefore: 40);
        long deployed = h.Chain.Info.DeployedAtBlock;
        Assert.Equal(41, deployed);
        Assert.Equal("0x", await CodeAtAsync(h, h.Chain.Info.Stablecoin, deployed - 1));
        Assert.NotEqual("0x", await CodeAtAsync(h, h.Chain.Info.Stablecoin, deployed));
        Assert.Equal(deployed, ComputeGrid.Chain.ChainDeployment.Read(Path.Combine(h.Dir, ChainConnection.FileName)).DeployedAtBlock);

        DepositPass first = await h.Deposits.PollAsync();
        Assert.Equal(deployed, first.ReadFrom);
        // A restart keeps the folder's cursor, not the deployment block.
        await h.Anvil.MineAsync(5);
        await h.StopServerAsync();
        await h.StartServerAsync();
        Assert.Equal(first.ReadTo + 1, (await h.Deposits.PollAsync()).ReadFrom);
    }

    /// <summary>The code at <paramref name="address"/> as of block <paramref name="block"/> ("0x": none).</summary>
    internal static async Task<string> CodeAtAsync(BridgeHarness h, string address, long block) =>
        (await h.Anvil.CallAsync("eth_getCode", address, "0x" + block.ToString("x", System.Globalization.CultureInfo.InvariantCulture))).GetString()!;

    [Fact]
    public async Task A_deposit_log_delivered_twice_and_read_again_after_a_restart_credits_once()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        Party bob = await TestServer.NewCustomerAsync(h.Operator, "bob");
        await h.DepositAsync(2, 3_000_001, BridgeHarness.Bytes32(bob.Account));
        await h.Anvil.MineAsync(BridgeHarness.Confirmations);
        long head = await h.Anvil.BlockNumberAsync();
        IReadOnlyList<ChainDeposit> logs = await h.Chain.Vault.GetDepositsAsync(0, head);
        ChainDeposit log = Assert.Single(logs);

        // The same log twice in one delivery, and again in another: one credit.
        var first = await h.Deposits.CreditAsync(h.Chain.Info.Vault, [log, log]);
        Assert.Equal((1, 0, 1), (first.Credited, first.Suspense, first.Duplicates));
        var again = await h.Deposits.CreditAsync(h.Chain.Info.Vault, [log]);
        Assert.Equal((0, 0, 1), (again.Credited, again.Suspense, again.Duplicates));
        Assert.Equal(3_000_001, await h.CreditBalanceAsync(bob.Account));

        // The watcher reads it too (its cursor never moved): still one credit.
        DepositPass pass = await h.Deposits.PollAsync();
        Assert.Equal((0, 1), (pass.Credited, pass.Duplicates));

        // A fresh data folder's cursor is gone, but the ledger is not: a restart that reads the chain from block 0 again
        // (the bridge store deleted) credits nothing twice.
        await h.StopServerAsync();
        File.Delete(BridgeStore.PathIn(h.Dir));
        await h.StartServerAsync();
        DepositPass reread = await h.Deposits.PollAsync();
        Assert.Equal((0, 1), (reread.Credited, reread.Duplicates));
        Assert.Equal(3_000_001, await h.CreditBalanceAsync(bob.Account));
    }

    [Fact]
    public async Task A_deposit_removed_by_a_reorg_before_its_confirmations_is_never_credited()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        Party carol = await TestServer.NewCustomerAsync(h.Operator, "carol");
        await h.DepositAsync(3, 4_000_000, BridgeHarness.Bytes32(carol.Account));
        await h.Anvil.MineAsync(BridgeHarness.Confirmations - 2); // one short
        Assert.Equal(0, (await h.Deposits.PollAsync()).Credited);

        // The blocks holding the deposit and the one after it are replaced by empty ones, and the chain goes on.
        await h.Anvil.ReorgAsync(BridgeHarness.Confirmations - 1);
        await h.Anvil.MineAsync(BridgeHarness.Confirmations + 2);
        DepositPass pass = await h.Deposits.PollAsync();
        Assert.Equal((0, 0, 0), (pass.Credited, pass.Suspense, pass.Duplicates));
        Assert.Equal(0, await h.CreditBalanceAsync(carol.Account));
        Assert.Equal(0, await h.Chain.Stablecoin.BalanceOfAsync(h.Chain.Info.Vault));
        Account custody = await h.SystemAccountAsync(AccountCode.VaultCustody);
        Assert.Equal(0, custody.DebitsPosted);
    }

    [Fact]
    public async Task A_deposit_naming_no_creditable_account_is_held_in_suspense_not_lost()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        // A principal id nobody has, and a bytes32 that is no ledger account at all.
        await h.DepositAsync(4, 1_500_000, BridgeHarness.Bytes32(ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, 999_999)));
        await h.DepositAsync(4, 500_000, "0x" + new string('f', 64));
        await h.Anvil.MineAsync(BridgeHarness.Confirmations);
        DepositPass pass = await h.Deposits.PollAsync();
        Assert.Equal((0, 2), (pass.Credited, pass.Suspense));
        Account suspense = await h.SystemAccountAsync(AccountCode.ChainSuspense);
        Assert.Equal(2_000_000, suspense.CreditsPosted);
    }

    [Fact]
    public async Task A_withdrawal_is_held_paid_once_by_the_vault_and_posted_after_its_confirmations()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        Party dave = await TestServer.NewCustomerAsync(h.Operator, "dave");
        await h.DepositAsync(5, 10_000_000, BridgeHarness.Bytes32(dave.Account));
        await h.Anvil.MineAsync(BridgeHarness.Confirmations);
        Assert.Equal(1, (await h.Deposits.PollAsync()).Credited);
        string to = BridgeHarness.Address(6);
        long before = await h.Chain.Stablecoin.BalanceOfAsync(to);

        HttpResponseMessage r = await BridgeHarness.WithdrawAsync(dave.Http, 2_500_000, to, "w-1");
        Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        JsonElement w = await BridgeHarness.JsonAsync(r);
        string id = w.GetProperty("id").GetString()!;
        Assert.Equal("held", w.GetProperty("state").GetString());
        // Held: no longer spendable, not yet gone.
        Account held = (await h.Ledger.LookupAccountsAsync([dave.Account]))[0];
        Assert.Equal(2_500_000, held.DebitsPending);
        Assert.Equal(10_000_000, held.CreditsPosted - held.DebitsPosted);

        // The same request again (a retry) is the same withdrawal; the same key with another amount is refused.
        JsonElement retried = await BridgeHarness.JsonAsync(await BridgeHarness.WithdrawAsync(dave.Http, 2_500_000, to, "w-1"));
        Assert.Equal(id, retried.GetProperty("id").GetString());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await BridgeHarness.WithdrawAsync(dave.Http, 2_500_001, to, "w-1")).StatusCode);

        // Sent and mined: paid on chain, not yet final.
        await h.Withdrawals.ProcessAsync();
        Assert.Equal(before + 2_500_000, await h.Chain.Stablecoin.BalanceOfAsync(to));
        JsonElement sent = await dave.Http.GetFromJsonElementAsync($"/api/chain/withdrawals/{id}");
        Assert.True(sent.GetProperty("state").GetString() == "sent", sent.GetRawText());
        Assert.Equal(2_500_000, (await h.Ledger.LookupAccountsAsync([dave.Account]))[0].DebitsPending);

        // With its confirmations: posted, and custody is the vault's stablecoin again.
        await h.Anvil.MineAsync(BridgeHarness.Confirmations);
        await h.Withdrawals.ProcessAsync();
        JsonElement paid = await dave.Http.GetFromJsonElementAsync($"/api/chain/withdrawals/{id}");
        Assert.Equal("paid", paid.GetProperty("state").GetString());
        Account after = (await h.Ledger.LookupAccountsAsync([dave.Account]))[0];
        Assert.Equal((0, 7_500_000), (after.DebitsPending, after.CreditsPosted - after.DebitsPosted));
        Account custody = await h.SystemAccountAsync(AccountCode.VaultCustody);
        Assert.Equal(await h.Chain.Stablecoin.BalanceOfAsync(h.Chain.Info.Vault), custody.DebitsPosted - custody.CreditsPosted);
        Account inFlight = await h.SystemAccountAsync(AccountCode.ChainWithdrawalsInFlight);
        Assert.Equal((0, 0), (inFlight.CreditsPending, inFlight.CreditsPosted - inFlight.DebitsPosted));

        // More passes change nothing.
        await h.Withdrawals.ProcessAsync();
        Assert.Equal(before + 2_500_000, await h.Chain.Stablecoin.BalanceOfAsync(to));
    }

    [Fact]
    public async Task Withdrawals_refuse_what_the_balance_cannot_cover_bad_input_and_another_principals_withdrawal()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        Party erin = await TestServer.NewCustomerAsync(h.Operator, "erin", fundMicroUsd: 1_000_000);
        Party frank = await TestServer.NewCustomerAsync(h.Operator, "frank");
        string to = BridgeHarness.Address(7);

        Assert.Equal(HttpStatusCode.Conflict, (await BridgeHarness.WithdrawAsync(erin.Http, 1_000_001, to, "too-much")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await BridgeHarness.WithdrawAsync(erin.Http, 0, to, "zero")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await BridgeHarness.WithdrawAsync(erin.Http, 1, "0x1234", "short-address")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await BridgeHarness.WithdrawAsync(erin.Http, 1, "0x" + new string('0', 40), "zero-address")).StatusCode);
        HttpResponseMessage noKey = await erin.Http.PostAsync("/api/chain/withdrawals", System.Net.Http.Json.JsonContent.Create(new { amount = 1, to }, options: TestServer.Json));
        Assert.Equal(HttpStatusCode.BadRequest, noKey.StatusCode);
        Assert.Equal("application/problem+json", noKey.Content.Headers.ContentType?.MediaType);
        Assert.Equal(1_000_000, await h.CreditBalanceAsync(erin.Account));

        JsonElement w = await BridgeHarness.JsonAsync(await BridgeHarness.WithdrawAsync(erin.Http, 400_000, to, "ok"));
        string id = w.GetProperty("id").GetString()!;
        // Frank sees no withdrawal of erin's; an operator does.
        Assert.Equal(HttpStatusCode.NotFound, (await frank.Http.GetAsync($"/api/chain/withdrawals/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await h.Operator.GetAsync($"/api/chain/withdrawals/{id}")).StatusCode);
        // An operator cannot withdraw (it has no balance, and the route is for customers and providers).
        Assert.Equal(HttpStatusCode.Forbidden, (await BridgeHarness.WithdrawAsync(h.Operator, 1, to, "op")).StatusCode);
    }

    [Fact]
    public async Task The_bridge_killed_between_paying_a_withdrawal_and_recording_it_finishes_it_exactly_once_after_a_restart()
    {
        int crashes = 0;
        await using BridgeHarness h = await BridgeHarness.StartAsync(afterWithdrawalSent: _ =>
        {
            crashes++;
            throw new SimulatedCrash();
        });
        Party gina = await TestServer.NewCustomerAsync(h.Operator, "gina", fundMicroUsd: 5_000_000);
        string to = BridgeHarness.Address(8);
        long before = await h.Chain.Stablecoin.BalanceOfAsync(to);
        // The vault holds what it pays (in the ledger, gina's money came from funding, not a deposit).
        await h.Chain.Stablecoin.MintAsync(h.Chain.Info.Vault, 5_000_000);
        JsonElement w = await BridgeHarness.JsonAsync(await BridgeHarness.WithdrawAsync(gina.Http, 3_000_000, to, "crash"));
        string id = w.GetProperty("id").GetString()!;

        // The vault pays, then the process "dies" before the outbox records it.
        await Assert.ThrowsAsync<SimulatedCrash>(() => h.Withdrawals.ProcessAsync());
        Assert.Equal(1, crashes);
        Assert.Equal(before + 3_000_000, await h.Chain.Stablecoin.BalanceOfAsync(to));
        await h.StopServerAsync();

        // Restarted (no fault): the row still says held; the resend is refused by the vault as already paid, the log
        // says where, and after the confirmations the hold is posted. Paid once on chain, once in the ledger.
        await h.StartServerAsync();
        Assert.Equal("held", (await h.Operator.GetFromJsonElementAsync($"/api/chain/withdrawals/{id}")).GetProperty("state").GetString());
        await h.Withdrawals.ProcessAsync();
        await h.Anvil.MineAsync(BridgeHarness.Confirmations);
        await h.Withdrawals.ProcessAsync();
        await h.Withdrawals.ProcessAsync();
        Assert.Equal("paid", (await h.Operator.GetFromJsonElementAsync($"/api/chain/withdrawals/{id}")).GetProperty("state").GetString());
        Assert.Equal(before + 3_000_000, await h.Chain.Stablecoin.BalanceOfAsync(to));
        Account gAccount = (await h.Ledger.LookupAccountsAsync([gina.Account]))[0];
        Assert.Equal((0, 2_000_000), (gAccount.DebitsPending, gAccount.CreditsPosted - gAccount.DebitsPosted));
        Assert.True(await h.Chain.Vault.IsWithdrawnAsync(id));
    }

    private sealed class SimulatedCrash : Exception;
}

internal static class HttpJson
{
    public static async Task<JsonElement> GetFromJsonElementAsync(this HttpClient http, string path)
    {
        HttpResponseMessage r = await http.GetAsync(path);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"GET {path}: {(int)r.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement;
    }
}
