using System.Text.Json;

namespace ComputeGrid.Cli.Tests;

/// <summary>
/// <c>computegrid shares pledge --lease ID --loan USD</c> as a user runs it, against a real server: a lease bought on the
/// book pledged for a loan, shown by <c>shares loans</c> with its kind, refused a second time, repaid with <c>shares repay</c>;
/// bad combinations of options and the server's refusals (too large, another's lease) exit 2 with one line.
/// </summary>
public sealed class SharesPledgeCliTests(MarketServerFixture f) : IClassFixture<MarketServerFixture>
{
    private static readonly Dictionary<string, string?> NoKeyVariable = new() { ["COMPUTEGRID_API_KEY"] = null };

    private Task<(int Code, string Out, string Err)> AsAsync(Party who, params string[] args) =>
        CliRunner.RunAsync(NoKeyVariable, ["shares", .. args, "--server", f.Url, "--key", who.Key]);

    private static string OneErrorLine((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Out}{r.Err}");
        string line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        return line;
    }

    [Theory]
    [InlineData("pledge", "--loan", "1")]
    [InlineData("pledge", "--lease", "7", "--node", "3", "--shares", "2", "--loan", "1")]
    [InlineData("pledge", "--lease", "7", "--shares", "2", "--loan", "1")]
    [InlineData("pledge", "--node", "3", "--loan", "1")]
    [InlineData("pledge", "--lease", "0", "--loan", "1")]
    [InlineData("pledge", "--lease", "7", "--loan", "1.0000001")]
    [InlineData("pledge", "--lease", "7")]
    public async Task Bad_pledge_options_exit_2_with_one_line(params string[] args) => OneErrorLine(await AsAsync(f.Buyer, args));

    [Fact]
    public async Task A_lease_is_pledged_listed_with_its_kind_and_repaid()
    {
        string symbol = (await f.Http.GetJsonAsync("/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit=3")).GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
        await f.Provider.Http.PostJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = 2_000_000, quantity = 2 });
        JsonElement bought = await f.Buyer.Http.PostJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 2_000_000, quantity = 2, time_in_force = "ioc" });
        string lease = bought.GetProperty("fills")[0].GetProperty("lease_id").GetInt64().ToString();

        // 2 GPU-hours at $2.00 less 20 %, half of it: $1.60 at most; another's lease is no lease of yours.
        Assert.Contains("at most 1600000 micro-USD", OneErrorLine(await AsAsync(f.Buyer, "pledge", "--lease", lease, "--loan", "1.600001")));
        Assert.Equal($"error: No lease {lease} of yours.", OneErrorLine(await AsAsync(f.Rival, "pledge", "--lease", lease, "--loan", "1")));

        var pledged = await AsAsync(f.Buyer, "pledge", "--lease", lease, "--loan", "1.6", "--json");
        Assert.True(pledged.Code == 0, pledged.Err);
        JsonElement loan = JsonDocument.Parse(pledged.Out).RootElement;
        Assert.Equal(("lease", long.Parse(lease), 1_600_000L, "open"), (loan.GetProperty("collateral").GetString(), loan.GetProperty("lease_id").GetInt64(),
            loan.GetProperty("lent").GetInt64(), loan.GetProperty("status").GetString()));
        string id = loan.GetProperty("id").GetInt64().ToString();
        Assert.Contains("pledged", OneErrorLine(await AsAsync(f.Buyer, "pledge", "--lease", lease, "--loan", "1")));

        var table = await AsAsync(f.Buyer, "loans");
        Assert.True(table.Code == 0, table.Err);
        Assert.Contains($"lease {lease} (2 GPU-h)", table.Out);
        Assert.Contains(symbol, table.Out);
        Assert.Contains("KIND", table.Out);

        var repaid = await AsAsync(f.Buyer, "repay", id, "--amount", "2", "--json");
        Assert.True(repaid.Code == 0, repaid.Err);
        Assert.Equal("repaid", JsonDocument.Parse(repaid.Out).RootElement.GetProperty("status").GetString());
    }
}
