using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ComputeGrid.Exchange.Instruments;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Cli.Demo;

/// <summary>
/// The actors of <c>serve --demo</c>, driven by one seeded <see cref="DemoPlan"/> on the server's clock through the
/// server's public HTTP API, each with its own key: keyed customers and an x402 payer send paid embeddings requests, the
/// provider offers its nodes' capacity and shares, buyers bid and lift (trades, leases), holders buy shares and claim
/// their revenue. At most <see cref="InFlightMax"/> steps run at once; a step due while that many run is skipped and
/// counted, so a slow server is never buried under a backlog. The driver never throws into the server: every failure is
/// counted, and logged once per kind and reason (<see cref="DemoTally"/>).
/// </summary>
public sealed class DemoDriver : IAsyncDisposable
{
    /// <summary>The most steps in flight at once.</summary>
    public const int InFlightMax = 8;

    /// <summary>How often the driver logs its counts.</summary>
    public static readonly TimeSpan SummaryEvery = TimeSpan.FromSeconds(60);

    /// <summary>How often the passed hours of the provider's leases are reported delivered.</summary>
    public static readonly TimeSpan MeteringEvery = TimeSpan.FromSeconds(60);

    /// <summary>How long the driver waits for the first inference node before it starts anyway.</summary>
    public static readonly TimeSpan NodesWaitMax = TimeSpan.FromSeconds(120);

    private const long ComputeReference = 2_000_000; // micro-USD per H100-hour the market centres on
    private const long ShareReference = 1_000_000; // micro-USD per share
    private static readonly TimeSpan OrderLife = TimeSpan.FromMinutes(10);
    private const string Model = "all-MiniLM-L6-v2";

    private static readonly string[] Sentences =
    [
        "The interconnect at the West Texas site is rated at fifty megawatts and the miners give way to AI load.",
        "A customer in Frankfurt asks for embeddings of a product catalogue with forty thousand descriptions.",
        "Prices in the real-time market spiked above two thousand dollars per megawatt-hour during the cold snap.",
        "Share holders receive the node's revenue pro rata, claimed into their balances through the ledger.",
        "The router weighs latency from the caller's region against each node's price and its site's power.",
        "A lease of eight GPUs for the next hour was bought on the spot book and is delivered as metered.",
        "Tokyo's day-ahead prices are published at noon, so the controller plans the next day with them known.",
        "Every charge is a pending transfer first, posted once the node has answered with the embeddings.",
    ];

    private readonly DemoApi _api;
    private readonly string _operatorKey;
    private readonly string _dataDirectory;
    private readonly int _seed;
    private readonly DemoRates _rates;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly DemoTally _tally;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _slots = new(InFlightMax, InFlightMax);
    private readonly Dictionary<(string Region, string Kind), (DateTimeOffset At, string[] Symbols)> _instruments = [];
    private readonly Lock _instrumentsLock = new();
    // GPUs the provider has asked for on each hourly instrument, against its offered share (DemoWorld.OfferedShare).
    private readonly Dictionary<string, long> _offered = [];
    private readonly Lock _offeredLock = new();
    private DemoCast? _cast;
    private DemoX402Payer? _payer;
    private Task _run = Task.CompletedTask;
    private DemoMetering? _metering;
    private CancellationTokenRegistration _stopping;
    private long _startTimestamp;

    private DemoDriver(DemoApi api, string operatorKey, string dataDirectory, int seed, DemoRates rates, TimeProvider time, ILogger log)
    {
        (_api, _operatorKey, _dataDirectory, _seed, _rates, _time, _log) = (api, operatorKey, dataDirectory, seed, rates, time, log);
        _tally = new DemoTally(log);
    }

    /// <summary>The steps' counts so far.</summary>
    internal DemoTally Tally => _tally;

    /// <summary>
    /// Starts the driver against the server at <paramref name="apiUrl"/>: it waits for an inference node, makes its actors
    /// (<see cref="DemoCast"/>) and then runs the plan of <paramref name="seed"/> until disposed.
    /// </summary>
    /// <param name="apiUrl">The server's public address.</param>
    /// <param name="operatorKey">An operator's key: only for making the actors and funding them, never for their steps.</param>
    /// <param name="dataDirectory">The server's data folder (the actors' keys are kept there).</param>
    /// <param name="seed">The plan's seed.</param>
    /// <param name="rates">The plan's pace.</param>
    /// <param name="time">The server's clock.</param>
    /// <param name="log">Where the driver reports (errors once per kind and reason, a summary every minute).</param>
    /// <param name="stopping">Cancelled when the server begins to stop: the actors stop first, so none calls a server that is closing.</param>
    public static DemoDriver Start(Uri apiUrl, string operatorKey, string dataDirectory, int seed, DemoRates rates, TimeProvider time, ILogger log, CancellationToken stopping)
    {
        var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), MaxConnectionsPerServer = InFlightMax })
        {
            BaseAddress = apiUrl,
            Timeout = TimeSpan.FromSeconds(30),
        };
        var driver = new DemoDriver(new DemoApi(http), operatorKey, dataDirectory, seed, rates, time, log);
        driver._startTimestamp = Stopwatch.GetTimestamp();
        driver._stopping = stopping.Register(driver._stop.Cancel);
        driver._run = Task.Run(() => driver.RunAsync(driver._stop.Token));
        return driver;
    }

    private async Task RunAsync(CancellationToken ct)
    {
        try
        {
            await WaitForNodesAsync(ct);
            _cast = await SetUpAsync(ct);
            if (_cast is null) return;
            _payer = await X402PayerAsync(ct);
            _log.LogInformation("demo world: {Customers} keyed customers, {Buyers} buyers, {Holders} holders, provider {Provider}{X402}; seed {Seed}; keys in {File}",
                _cast.Customers.Count, _cast.Buyers.Count, _cast.Holders.Count, _cast.Provider.Name,
                _payer is null ? ", no x402 payer (no chain)" : $", x402 payer {_payer.Address.ToChecksumString()}", _seed, DemoCast.PathIn(_dataDirectory));
            var metering = new DemoMetering(_api, _operatorKey, _cast.Provider, _time);
            _metering = metering;
            Task meter = MeterAsync(metering, ct);
            try { await RunPlanAsync(ct); }
            finally { await meter; } // it ends with the token and never throws
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (Exception e)
        {
            // A bug in the driver must not take the server down: it is reported and the demo's actors stop.
            _log.LogWarning(e, "demo world stopped: {Message}", e.Message);
        }
    }

    private async Task WaitForNodesAsync(CancellationToken ct)
    {
        long start = _time.GetTimestamp();
        while (_time.GetElapsedTime(start) < NodesWaitMax)
        {
            DemoAnswer nodes = await _api.GetAsync("/api/inference/nodes", null, ct);
            if (nodes.Ok && nodes["nodes"].ValueKind == JsonValueKind.Array && nodes["nodes"].EnumerateArray().Any(n => n.TryGetProperty("healthy", out JsonElement h) && h.GetBoolean()))
                return;
            await Task.Delay(TimeSpan.FromMilliseconds(250), _time, ct);
        }
        _log.LogInformation("demo world: no inference node is up after {Seconds} s; the actors start anyway", NodesWaitMax.TotalSeconds);
    }

    // The actors, retried while the server refuses (it may still be starting a part); null when stopped.
    private async Task<DemoCast?> SetUpAsync(CancellationToken ct)
    {
        string? lastProblem = null;
        while (!ct.IsCancellationRequested)
        {
            try { return await DemoCast.EnsureAsync(_api, _operatorKey, _dataDirectory, ct); }
            catch (DemoSetupException e)
            {
                if (e.Message != lastProblem) _log.LogWarning("demo world: setting up the actors failed, retrying every 5 s: {Problem}", e.Message);
                lastProblem = e.Message;
            }
            await Task.Delay(TimeSpan.FromSeconds(5), _time, ct);
        }
        return null;
    }

    private async Task<DemoX402Payer?> X402PayerAsync(CancellationToken ct)
    {
        DemoAnswer chain = await _api.GetAsync("/api/chain", null, ct);
        return chain.Ok ? new DemoX402Payer(_time, _seed) : null;
    }

    // The passed hours of the leases sold are reported once a minute (DemoMetering), so they pay as they are delivered.
    private async Task MeterAsync(DemoMetering metering, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                await Task.Delay(MeteringEvery, _time, ct);
                if (await metering.SweepAsync(ct) is { } problem) _tally.Failure("lease_delivery", problem);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException or OverflowException)
        {
            _tally.Failure("lease_delivery", e.GetType().Name + ": " + e.Message); // the metering stops; the actors go on
        }
    }

    private async Task RunPlanAsync(CancellationToken ct)
    {
        DateTimeOffset start = _time.GetUtcNow();
        DateTimeOffset nextSummary = start + SummaryEvery;
        DemoRates rates = _payer is null ? _rates with { X402Requests = 0 } : _rates;
        var running = new List<Task>();
        try
        {
            await RunStepsAsync(DemoPlan.ForWorld(_seed, rates).Steps(), start, nextSummary, running, ct);
        }
        finally
        {
            // Steps in flight end with the token (their calls are cancelled); none outlives the driver's client.
            await Task.WhenAll(running);
        }
    }

    private async Task RunStepsAsync(IEnumerable<DemoStep> steps, DateTimeOffset start, DateTimeOffset nextSummary, List<Task> running, CancellationToken ct)
    {
        foreach (DemoStep step in steps)
        {
            TimeSpan wait = start + step.At - _time.GetUtcNow();
            if (wait > TimeSpan.Zero) await Task.Delay(wait, _time, ct);
            if (_time.GetUtcNow() >= nextSummary)
            {
                _log.LogInformation("demo world: {Summary}, {Hours} lease-hours delivered", _tally.Summary(), _metering?.Reported ?? 0);
                nextSummary += SummaryEvery;
            }
            if (!_slots.Wait(0))
            {
                _tally.Count(step.Kind, DemoOutcome.Skipped);
                continue;
            }
            running.RemoveAll(t => t.IsCompleted);
            running.Add(StepAsync(step, ct));
        }
    }

    private async Task StepAsync(DemoStep step, CancellationToken ct)
    {
        try
        {
            var (outcome, reason) = await RunStepAsync(step, ct);
            _tally.Count(step.Kind, outcome, reason);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException or DemoSetupException)
        {
            _tally.Count(step.Kind, DemoOutcome.Failed, e.GetType().Name + ": " + e.Message);
        }
        finally
        {
            _slots.Release();
        }
    }

    private Task<(DemoOutcome, string?)> RunStepAsync(DemoStep step, CancellationToken ct) => step.Kind switch
    {
        DemoStepKind.KeyedRequest => KeyedRequestAsync(step, ct),
        DemoStepKind.X402Request => X402RequestAsync(step, ct),
        DemoStepKind.ComputeAsk => ComputeAskAsync(step, ct),
        DemoStepKind.ComputeBid => ComputeBidAsync(step, ct),
        DemoStepKind.ComputeLift => ComputeLiftAsync(step, ct),
        DemoStepKind.ShareAsk => ShareAskAsync(step, ct),
        DemoStepKind.ShareBuy => ShareBuyAsync(step, ct),
        DemoStepKind.Claim => ClaimAsync(step, ct),
        _ => throw new InvalidOperationException($"no step {step.Kind}"),
    };

    // ------------------------------------------------------------------ paid requests

    private static string Body(DemoStep step)
    {
        // One to three sentences, chosen by the step: tens to a hundred tokens, a few micro-USD at the demo's prices.
        int n = 1 + step.Size % 3;
        string[] input = [.. Enumerable.Range(0, n).Select(i => Sentences[(step.Pick + i * 3) % Sentences.Length])];
        return JsonSerializer.Serialize(new Dictionary<string, object> { ["model"] = Model, ["input"] = input, ["encoding_format"] = "base64" });
    }

    private async Task<(DemoOutcome, string?)> KeyedRequestAsync(DemoStep step, CancellationToken ct)
    {
        DemoActor customer = _cast!.Customers[step.Actor];
        DemoAnswer a = await _api.SendAsync(HttpMethod.Post, "/v1/embeddings", customer.Key, Body(step), ct);
        if (a.Ok && _firstPaid == 0 && Interlocked.CompareExchange(ref _firstPaid, Stopwatch.GetTimestamp(), 0) == 0)
            _log.LogInformation("demo world: first paid request answered {Seconds:0.0} s after the driver started", Stopwatch.GetElapsedTime(_startTimestamp).TotalSeconds);
        return a.Ok ? (DemoOutcome.Done, null) : (DemoOutcome.Failed, a.Reason);
    }

    private long _firstPaid;

    private async Task<(DemoOutcome, string?)> X402RequestAsync(DemoStep step, CancellationToken ct)
    {
        DemoAnswer a = await _payer!.PayAsync(_api, Body(step), ct);
        return a.Ok ? (DemoOutcome.Done, null) : (DemoOutcome.Failed, a.Reason);
    }

    // ------------------------------------------------------------------ compute

    private DemoNode Node(DemoStep step) => DemoWorld.Nodes[step.Pick % DemoWorld.Nodes.Count];

    // A daily forward (one of the next three) one step in ten, else one of the next three hourly instruments of the node's
    // region, the nearest most often (DemoWorld.HourlyIndex): a lease bought for the coming hour is in delivery, and its
    // GPUs in its site's load, as soon as that hour begins.
    private async Task<(string? Symbol, long Hours)> InstrumentAsync(DemoStep step, CancellationToken ct)
    {
        bool daily = (step.Pick >> 8) % 10 == 0;
        string[] symbols = await SymbolsAsync(Node(step).Region, daily ? "D" : "H", ct);
        if (symbols.Length == 0) return (null, 0);
        int index = daily ? (step.Pick >> 4) % Math.Min(3, symbols.Length) : DemoWorld.HourlyIndex(step.Pick, Math.Min(3, symbols.Length));
        return (symbols[index], daily ? 24 : 1);
    }

    // The GPUs of a compute order, sized to the node its instrument was chosen for (DemoWorld.OrderGpus).
    private int Gpus(DemoStep step, long hours) => DemoWorld.OrderGpus(Node(step), step.Kind, step.Size, daily: hours > 1);

    // Instruments trading now (an hour's listing changes once an hour): read at most once a minute per region and kind.
    private async Task<string[]> SymbolsAsync(string region, string kind, CancellationToken ct)
    {
        DateTimeOffset now = _time.GetUtcNow();
        lock (_instrumentsLock)
            if (_instruments.TryGetValue((region, kind), out var cached) && now - cached.At < TimeSpan.FromMinutes(1)) return cached.Symbols;
        DemoAnswer page = await _api.GetAsync($"/api/exchange/instruments?gpu={DemoWorld.Gpu}&region={region}&kind={kind}&limit=100", null, ct);
        if (!page.Ok) return [];
        string[] symbols = [.. page["instruments"].EnumerateArray()
            .Where(i => i.GetProperty("trading").GetBoolean() && DateTimeOffset.Parse(i.GetProperty("trading_end").GetString()!, CultureInfo.InvariantCulture) > now + TimeSpan.FromMinutes(2))
            .OrderBy(i => DateTimeOffset.Parse(i.GetProperty("delivery_start").GetString()!, CultureInfo.InvariantCulture))
            .Select(i => i.GetProperty("symbol").GetString()!)];
        lock (_instrumentsLock) _instruments[(region, kind)] = (now, symbols);
        return symbols;
    }

    private string ExpiresAt() => (_time.GetUtcNow() + OrderLife).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    private async Task<(DemoOutcome, string?)> ComputeAskAsync(DemoStep step, CancellationToken ct)
    {
        var (symbol, hours) = await InstrumentAsync(step, ct);
        if (symbol is null) return (DemoOutcome.Declined, null);
        long price = checked(ComputeReference + step.Offset * 10_000L);
        long gpus = Gpus(step, hours);
        if (hours == 1 && !TryOffer(symbol, Node(step).Region, gpus)) return (DemoOutcome.Declined, null); // the hour's share is on offer
        DemoAnswer a = await _api.PostAsync("/api/exchange/orders", _cast!.Provider.Key,
            new { instrument = symbol, side = "sell", price, quantity = gpus * hours, time_in_force = "gtt", expires_at = ExpiresAt() }, ct);
        if (!a.Ok && hours == 1) TryOffer(symbol, Node(step).Region, -gpus); // not on offer after all
        // No free capacity left in that window: the node is sold out there, which the market expects.
        if (a.Status == 409) return (DemoOutcome.Declined, null);
        return a.Ok ? (DemoOutcome.Done, null) : (DemoOutcome.Failed, a.Reason);
    }

    // Counts `gpus` more asked on an hourly instrument unless that passes the hour's offered share of the region's GPUs
    // (a negative count takes an ask back). What was offered is kept in memory: a restarted demo may offer an hour's share
    // once more. Hours that have begun are forgotten.
    private bool TryOffer(string symbol, string region, long gpus)
    {
        if (!InstrumentSymbol.TryParse(symbol, out InstrumentSymbol? key)) return false;
        DateTimeOffset hour = DateTimeOffset.FromUnixTimeMilliseconds(key.DeliveryStart / 1_000_000);
        long cap = (long)(DemoWorld.OfferedShare(_seed, region, hour) * DemoWorld.RegionGpus(region));
        lock (_offeredLock)
        {
            long asked = _offered.GetValueOrDefault(symbol);
            if (gpus > 0 && asked + gpus > cap) return false;
            _offered[symbol] = Math.Max(0, asked + gpus);
            if (_offered.Count > 64)
            {
                DateTimeOffset now = _time.GetUtcNow();
                foreach (string old in _offered.Keys.Where(k => InstrumentSymbol.TryParse(k, out InstrumentSymbol? o) && o.DeliveryStart / 1_000_000 < now.ToUnixTimeMilliseconds()).ToArray())
                    _offered.Remove(old);
            }
            return true;
        }
    }

    private async Task<(DemoOutcome, string?)> ComputeBidAsync(DemoStep step, CancellationToken ct)
    {
        var (symbol, hours) = await InstrumentAsync(step, ct);
        if (symbol is null) return (DemoOutcome.Declined, null);
        long price = checked(ComputeReference - 100_000 - step.Offset * 10_000L);
        return await BuyAsync(_cast!.Buyers[step.Actor], new { instrument = symbol, side = "buy", price, quantity = Gpus(step, hours) * hours, time_in_force = "gtt", expires_at = ExpiresAt() }, ct);
    }

    private async Task<(DemoOutcome, string?)> ComputeLiftAsync(DemoStep step, CancellationToken ct)
    {
        var (symbol, hours) = await InstrumentAsync(step, ct);
        if (symbol is null) return (DemoOutcome.Declined, null);
        // Above every ask the provider makes: the lift takes the best one (price-time priority), or nothing is there.
        long price = checked(ComputeReference + 300_000);
        return await BuyAsync(_cast!.Buyers[step.Actor], new { instrument = symbol, side = "buy", price, quantity = Gpus(step, hours) * hours, time_in_force = "ioc" }, ct);
    }

    // A buy; a buyer whose trading account cannot hold it (402) is topped up for the next one.
    private async Task<(DemoOutcome, string?)> BuyAsync(DemoActor buyer, object order, CancellationToken ct)
    {
        DemoAnswer a = await _api.PostAsync("/api/exchange/orders", buyer.Key, order, ct);
        if (a.Status == 402)
        {
            await DemoCast.TraderAsync(_api, _operatorKey, buyer, ct);
            return (DemoOutcome.Declined, null);
        }
        if (a.Status == 409) return (DemoOutcome.Declined, null); // nothing to lift
        if (!a.Ok) return (DemoOutcome.Failed, a.Reason);
        // An immediate-or-cancel buy that found no seller is answered 200 with no fill: declined by the market, not an error.
        return a["fills"].ValueKind == JsonValueKind.Array && a["fills"].GetArrayLength() == 0 && a["status"].GetString() != "resting"
            ? (DemoOutcome.Declined, null) : (DemoOutcome.Done, null);
    }

    // ------------------------------------------------------------------ shares

    private long ShareNode(DemoStep step)
    {
        DemoNode[] issuing = [.. DemoWorld.Nodes.Where(n => n.SharesIssued)];
        return _cast!.ExchangeNodes[issuing[step.Pick % issuing.Length].Id];
    }

    private async Task<(DemoOutcome, string?)> ShareAskAsync(DemoStep step, CancellationToken ct)
    {
        long price = checked(ShareReference + step.Offset * 10_000L);
        DemoAnswer a = await _api.PostAsync("/api/exchange/orders", _cast!.Provider.Key,
            new { instrument = $"SHR-{ShareNode(step)}", side = "sell", price, quantity = 5 * step.Size, time_in_force = "gtt", expires_at = ExpiresAt() }, ct);
        if (a.Status == 409) return (DemoOutcome.Declined, null); // every free share is offered or sold
        return a.Ok ? (DemoOutcome.Done, null) : (DemoOutcome.Failed, a.Reason);
    }

    private async Task<(DemoOutcome, string?)> ShareBuyAsync(DemoStep step, CancellationToken ct)
    {
        DemoActor holder = _cast!.Holders[step.Actor];
        string symbol = $"SHR-{ShareNode(step)}";
        // One step in eight a holder with shares offers some back instead, so the books keep two sides once the provider sold out.
        if (step.Size == 8)
        {
            DemoAnswer held = await _api.GetAsync("/api/shares/holdings", holder.Key, ct);
            long free = held.Ok ? held["holdings"].EnumerateArray().Where(h => h.GetProperty("node").GetInt64() == ShareNode(step))
                .Select(h => h.GetProperty("free").GetInt64()).FirstOrDefault() : 0;
            if (free >= 10)
            {
                DemoAnswer sold = await _api.PostAsync("/api/exchange/orders", holder.Key,
                    new { instrument = symbol, side = "sell", price = checked(ShareReference + 200_000 + step.Offset * 10_000L), quantity = free / 2, time_in_force = "gtt", expires_at = ExpiresAt() }, ct);
                return sold.Ok ? (DemoOutcome.Done, null) : sold.Status == 409 ? (DemoOutcome.Declined, null) : (DemoOutcome.Failed, sold.Reason);
            }
        }
        return await BuyAsync(holder, new { instrument = symbol, side = "buy", price = checked(ShareReference + 400_000), quantity = step.Size, time_in_force = "ioc" }, ct);
    }

    // A holder claims where it is owed the most (its holdings' entitlements); owed nothing anywhere, the claim is declined.
    private async Task<(DemoOutcome, string?)> ClaimAsync(DemoStep step, CancellationToken ct)
    {
        DemoActor holder = _cast!.Holders[step.Actor];
        DemoAnswer held = await _api.GetAsync("/api/shares/holdings", holder.Key, ct);
        if (!held.Ok) return (DemoOutcome.Failed, held.Reason);
        long node = 0, owed = 0;
        foreach (JsonElement h in held["holdings"].EnumerateArray())
        {
            long n = h.GetProperty("node").GetInt64();
            DemoAnswer e = await _api.GetAsync($"/api/shares/{n}/entitlement", holder.Key, ct);
            if (!e.Ok) return (DemoOutcome.Failed, e.Reason);
            if (e["owed_micro_usd"].GetInt64() > owed) (node, owed) = (n, e["owed_micro_usd"].GetInt64());
        }
        if (owed == 0) return (DemoOutcome.Declined, null);
        DemoAnswer a = await _api.PostAsync($"/api/shares/{node}/claims", holder.Key, new { }, ct);
        // Claimed a moment ago by the auto-claim, or by this holder's previous step: nothing owed any more.
        if (a.Status == 409) return (DemoOutcome.Declined, null);
        return a.Ok ? (DemoOutcome.Done, null) : (DemoOutcome.Failed, a.Reason);
    }

    /// <summary>Stops the actors (steps in flight finish or are cancelled) and logs the counts.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.DisposeAsync();
        await _stop.CancelAsync();
        try { await _run.WaitAsync(TimeSpan.FromSeconds(10)); }
        catch (TimeoutException) { }
        _log.LogInformation("demo world stopped: {Summary}, {Hours} lease-hours delivered", _tally.Summary(), _metering?.Reported ?? 0);
        _payer?.Dispose();
        _api.Dispose();
        _stop.Dispose();
    }
}
