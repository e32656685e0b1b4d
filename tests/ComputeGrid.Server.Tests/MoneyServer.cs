using System.Net;
using System.Text;
using System.Text.Json;
using ComputeGrid.Inference.Model;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// An in-process server with local nodes (the real model) on a data folder it can be stopped and started again on, for
/// the tests of paid inference's money facts. Customers are made and funded through the operator API; balances are read
/// from the ledger.
/// </summary>
public sealed class MoneyServer : IAsyncDisposable
{
    public const string Model = "all-MiniLM-L6-v2";

    private int _customers;

    private MoneyServer(string dir) => Dir = dir;

    public string Dir { get; }
    public WebApplication App { get; private set; } = null!;
    /// <summary>A client of the public port carrying the first operator's key.</summary>
    public HttpClient Operator { get; private set; } = null!;
    /// <summary>A client of the public port without a key (requests add their own).</summary>
    public HttpClient Http { get; private set; } = null!;
    public InferenceHost Host => App.Services.GetRequiredService<InferenceHost>();
    public LocalNodes Nodes => App.Services.GetRequiredService<LocalNodes>();
    public LedgerEngine Ledger => App.Services.GetRequiredService<LedgerEngine>();

    /// <summary>Starts a server on a new folder.</summary>
    public static async Task<MoneyServer> StartAsync(string name, InferenceServerOptions options)
    {
        var s = new MoneyServer(TestServer.TempDir(name));
        await s.StartOnAsync(options);
        return s;
    }

    /// <summary>Stops the server (gracefully) and starts it again on the same folder, with <paramref name="options"/>.</summary>
    public async Task RestartAsync(InferenceServerOptions options)
    {
        await StopAsync();
        await StartOnAsync(options);
    }

    private async Task StartOnAsync(InferenceServerOptions options)
    {
        (App, Operator) = await TestServer.StartInProcessAsync(Dir, inference: options);
        Http = TestServer.Client(ServerHost.Endpoints(App).ApiUrl, null);
        // The nodes are admitted and registered by the server's start-up; wait until they are.
        for (int i = 0; i < 200 && Host.Gateway.Registry.Snapshot().Count(n => n.Healthy) < options.LocalNodes.Count; i++) await Task.Delay(25);
        Assert.Equal(options.LocalNodes.Count, Host.Gateway.Registry.Snapshot().Count(n => n.Healthy));
    }

    private async Task StopAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Operator.Dispose();
        Http.Dispose();
    }

    /// <summary>A new customer in <paramref name="region"/>, funded with <paramref name="microUsd"/> when positive.</summary>
    public async Task<Party> CustomerAsync(string region, long microUsd)
    {
        Party p = await TestServer.NewCustomerAsync(Operator, $"money-{Interlocked.Increment(ref _customers)}", region, microUsd);
        p.Http.Dispose(); // requests go through Http with the key (the port changes at a restart)
        return p;
    }

    /// <summary>Funds a customer again (a top-up) under <paramref name="fundingId"/>.</summary>
    public Task FundAsync(ulong customer, long microUsd, string fundingId) =>
        Operator.PostJsonAsync($"/api/customers/{customer}/fund", new { amount = microUsd, funding_id = fundingId });

    /// <summary>Posts an embeddings request as <paramref name="key"/>'s customer.</summary>
    public async Task<HttpResponseMessage> EmbedAsync(string key, object body, string? idempotencyKey = null, CancellationToken ct = default)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings")
        {
            Content = new StringContent(JsonSerializer.Serialize(body, TestServer.Json), Encoding.UTF8, "application/json"),
        };
        req.Headers.Authorization = new("Bearer", key);
        if (idempotencyKey is not null) req.Headers.Add("Idempotency-Key", idempotencyKey);
        return await Http.SendAsync(req, ct);
    }

    /// <summary>The customer's posted debits, available balance and pending (held) debits, micro-USD, once every answered request is captured.</summary>
    public async Task<(long Debits, long Available, long Pending)> AccountAsync(ulong id)
    {
        await Host.Gateway.Settler.IdleAsync();
        Account a = (await Ledger.LookupAccountsAsync([InferencePayments.CustomerAccount(id)]))[0];
        return (a.DebitsPosted, a.CreditsPosted - a.DebitsPosted - a.DebitsPending, a.DebitsPending);
    }

    /// <summary>A node's revenue account (its credits posted), by the node's principal.</summary>
    public async Task<(UInt128 Id, long Credits)> RevenueAsync(string nodeId)
    {
        ulong principal = Host.Gateway.NodeNumber(nodeId) ?? throw new InvalidOperationException($"no node {nodeId}");
        await Host.Gateway.Settler.IdleAsync();
        UInt128 id = InferencePayments.NodeRevenueAccount(principal);
        Account[] a = await Ledger.LookupAccountsAsync([id]);
        return (id, a.Length == 0 ? -1 : a[0].CreditsPosted);
    }

    /// <summary>The metered cost of <paramref name="text"/> at <paramref name="price"/> per 1,000 tokens.</summary>
    public long CostOf(string text, long price) => InferenceGateway.Cost(Host.Gateway.Models.Models[0].Tokenize(text).TokenCount, price);

    /// <summary>The fee the platform takes of <paramref name="cost"/>.</summary>
    public long FeeOf(long cost) => cost * Host.Gateway.Options.PlatformFeeBasisPoints / 10_000;

    /// <summary>The answer's status, with its body when it is not <paramref name="expected"/>.</summary>
    public static async Task AssertStatusAsync(HttpStatusCode expected, HttpResponseMessage r) =>
        Assert.True(r.StatusCode == expected, $"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");

    /// <summary>The OpenAI error's code of an error answer.</summary>
    public static async Task<string?> ErrorCodeAsync(HttpResponseMessage r) =>
        JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString();

    /// <summary>Waits (polling, up to <paramref name="within"/>) until <paramref name="condition"/> holds; false if it never did.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return true;
            await Task.Delay(10);
        }
        return await condition();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>A node channel in front of a real one that the tests make misbehave: wait first, or change the answer.</summary>
public sealed class FaultyChannel(INodeChannel inner, Func<NodeWork, CancellationToken, Task>? before = null, Func<NodeRunResult, NodeRunResult>? alter = null) : INodeChannel
{
    private int _calls;

    /// <summary>Calls so far.</summary>
    public int Calls => Volatile.Read(ref _calls);

    public async Task<NodeRunResult> RunAsync(NodeWork work, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        if (before is not null) await before(work, cancellationToken);
        NodeRunResult r = await inner.RunAsync(work, cancellationToken);
        return alter is null ? r : alter(r);
    }

    /// <summary>The answer with one value of its first vector replaced by <paramref name="value"/> (NaN, ±Infinity).</summary>
    public static Func<NodeRunResult, NodeRunResult> Poison(float value) => r =>
    {
        float[] v = (float[])r.Vectors.Clone();
        v[v.Length / 2] = value;
        return r with { Vectors = v };
    };
}

/// <summary>Makes a node of a server misbehave for one test, and puts the real one back after it.</summary>
public sealed class SwappedNode : IDisposable
{
    private readonly InferenceGateway _gateway;
    private readonly string _node;
    private readonly INodeChannel _original;

    public SwappedNode(InferenceGateway gateway, string node, Func<INodeChannel, FaultyChannel> make)
    {
        _gateway = gateway;
        _node = node;
        var current = gateway.SwapChannel(node, new FaultyChannel(new NoChannel()));
        _original = current;
        Channel = make(current);
        gateway.SwapChannel(node, Channel);
    }

    public FaultyChannel Channel { get; }

    public void Dispose()
    {
        _gateway.SwapChannel(_node, _original);
        // A failed node leaves the rotation until its next heartbeat; put it back now for the next test.
        _gateway.Registry.Heartbeat(_node, new ComputeGrid.Inference.Routing.NodeHeartbeat(0, 0, 10));
    }

    private sealed class NoChannel : INodeChannel
    {
        public Task<NodeRunResult> RunAsync(NodeWork work, CancellationToken cancellationToken) => throw new IOException("swapping");
    }
}
