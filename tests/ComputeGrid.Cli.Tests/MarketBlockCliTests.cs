using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Core;

namespace ComputeGrid.Cli.Tests;

/// <summary><c>computegrid market block-quote</c> and <c>market block</c> as a user runs them, against a real server.</summary>
public sealed class MarketBlockCliTests(MarketServerFixture f) : IClassFixture<MarketServerFixture>
{
    private const long NsPerHour = 3_600_000_000_000;

    /// <summary>A command of the buyer, whose key comes from $COMPUTEGRID_API_KEY as a user would keep it.</summary>
    private Task<(int Code, string Out, string Err)> MarketAsync(params string[] args) =>
        CliRunner.RunAsync(new Dictionary<string, string?> { ["COMPUTEGRID_API_KEY"] = f.Buyer.Key }, ["market", .. args, "--server", f.Url]);

    private static string OneErrorLine((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Out}{r.Err}");
        var line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        return line;
    }

    private static string Iso(long ns) => DateTimeOffset.UnixEpoch.AddTicks(ns / 100).ToString("yyyy-MM-dd'T'HH:mm'Z'", CultureInfo.InvariantCulture);

    /// <summary>The start of the H100 Frankfurt hour two hours ahead and the symbols of it and the next two hours.</summary>
    private async Task<(long Start, string[] Symbols)> HoursAsync()
    {
        var page = await f.Http.GetFromJsonAsync<JsonElement>("/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit=10");
        var hourly = page.GetProperty("instruments").EnumerateArray().OrderBy(Start).Skip(2).Take(3).ToArray();
        return (Start(hourly[0]), hourly.Select(i => i.GetProperty("symbol").GetString()!).ToArray());

        static long Start(JsonElement i) => ApiTime.TryParse(i.GetProperty("delivery_start").GetString(), null, out var t) ? t.UnixNanoseconds : throw new FormatException(i.ToString());
    }

    private string[] Block(long start, long end, string gpus = "2", string max = "2.2") =>
        ["--gpu", "H100", "--region", "frankfurt", "--start", Iso(start), "--end", Iso(end), "--gpus", gpus, "--max-average-price", max];

    [Fact]
    public async Task Block_quote_json_then_block_fills_at_the_quoted_total()
    {
        var (start, symbols) = await HoursAsync();
        foreach (var s in symbols[..2])
        {
            await f.Provider.Http.PostJsonAsync("/api/exchange/orders", new { instrument = s, side = "sell", price = 2_150_000, quantity = 4 });
        }

        var quoted = await MarketAsync(["block-quote", .. Block(start, start + 2 * NsPerHour), "--json"]);
        Assert.True(quoted.Code == 0, quoted.Err);
        var q = JsonDocument.Parse(quoted.Out).RootElement;
        Assert.True(q.GetProperty("fillable").GetBoolean());
        Assert.True(q.GetProperty("within_limit").GetBoolean());
        // The limit typed in dollars arrives as exact micro-USD.
        Assert.Equal(2_200_000, q.GetProperty("max_average_price").GetInt64());
        Assert.Equal(2 * 2 * 2_150_000, q.GetProperty("total_cost").GetInt64());
        Assert.Equal(symbols[..2], q.GetProperty("legs").EnumerateArray().Select(l => l.GetProperty("symbol").GetString()!).ToArray());
        Assert.Empty(q.GetProperty("short").EnumerateArray());

        var table = await MarketAsync(["block-quote", .. Block(start, start + 2 * NsPerHour)]);
        Assert.True(table.Code == 0, table.Err);
        Assert.Contains("fillable within the limit", table.Out);
        Assert.Contains(symbols[1], table.Out);
        Assert.Contains("8.60", table.Out);

        var placed = await MarketAsync(["block", .. Block(start, start + 2 * NsPerHour)]);
        Assert.True(placed.Code == 0, placed.Err);
        Assert.Contains("filled, total 8.60, average 2.15/GPU-h", placed.Out);
        Assert.Contains("active", placed.Out);

        // Now the hours offer 2 GPUs each: a block of 4 is short, and the one line names the short hours.
        string line = OneErrorLine(await MarketAsync(["block", .. Block(start, start + 2 * NsPerHour, gpus: "4")]));
        Assert.Contains("Short:", line);
        Assert.Contains("2 of 4 GPUs", line);
    }

    [Theory]
    [InlineData("--max-average-price", "2.1234567")]
    [InlineData("--max-average-price", "-2")]
    [InlineData("--max-average-price", "two")]
    [InlineData("--start", "tomorrow")]
    [InlineData("--start", "2026-11-26T14:00")]
    [InlineData("--gpus", "many")]
    [InlineData("--gpus", "0")]
    [InlineData("--gpu", "V100")]
    [InlineData("--end", "")]
    public async Task Bad_input_exits_2_with_one_line(string option, string value)
    {
        var (start, _) = await HoursAsync();
        var args = Block(start, start + NsPerHour).ToList();
        int at = args.IndexOf(option);
        if (value.Length == 0) args.RemoveRange(at, 2); // a missing required option
        else args[at + 1] = value;
        OneErrorLine(await MarketAsync(["block-quote", .. args]));
    }

    [Fact]
    public async Task A_window_that_is_not_whole_hours_is_one_line_from_the_server()
    {
        var (start, _) = await HoursAsync();
        string line = OneErrorLine(await MarketAsync(["block-quote", .. Block(start + 60_000_000_000, start + NsPerHour)]));
        Assert.Contains("whole UTC hours", line);
    }
}
