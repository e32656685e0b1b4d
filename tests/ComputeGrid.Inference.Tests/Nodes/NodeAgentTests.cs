using System.Runtime.InteropServices;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Inference.Tests.Model;

namespace ComputeGrid.Inference.Tests.Nodes;

/// <summary>
/// The node agent against a fake node port on Kestrel (HTTP/2 only) that speaks the node protocol: admission,
/// challenge-and-response registration, signed heartbeats, work in and results out on one HTTP/2 connection, the
/// simulated distance, reconnection, refusals and graceful stops. The agents share the collection's loaded model.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class NodeAgentTests(MiniLmFixture fixture)
{
    private static readonly LatencyMatrix Latency = LatencyMatrix.LoadDefault();
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private const string Home = "frankfurt";

    /// <summary>A new agent of <paramref name="server"/>, admitted there with its own key unless <paramref name="admit"/> is false.</summary>
    private NodeAgent NewAgent(FakeNodeServer server, StringWriter log, Func<NodeAgentOptions, NodeAgentOptions>? tweak = null, bool admit = true)
    {
        var options = new NodeAgentOptions
        {
            Server = server.Url,
            Region = Home,
            PriceMicroUsdPer1kTokens = 18,
            Capacity = 2,
            HeartbeatInterval = TimeSpan.FromMilliseconds(100),
            ReconnectMinDelay = TimeSpan.FromMilliseconds(20),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(200),
        };
        var agent = new NodeAgent(tweak?.Invoke(options) ?? options, TextWriter.Synchronized(log), fixture.Model, Latency);
        if (admit) server.Admit(agent.NodeId, agent.PublicKey.Span);
        return agent;
    }

    /// <summary>Whether <paramref name="signatureBase64"/> verifies, with <paramref name="publicKey"/>, over the session message of these fields.</summary>
    private static bool Verifies(string signatureBase64, ReadOnlyMemory<byte> publicKey, string nodeId, string nonce, string region, string[] models, long price, int capacity) =>
        NodeSigning.VerifyBytes(NodeSigning.SessionMessage(nodeId, nonce, region, models, price, capacity), Convert.FromBase64String(signatureBase64), publicKey.Span);

    private static bool Verifies(NodeRegisterRequest r, ReadOnlyMemory<byte> publicKey) =>
        Verifies(r.SignatureBase64, publicKey, r.NodeId, r.Nonce, r.Region, r.Models, r.PriceMicroUsdPer1kTokens, r.Capacity);

    private static NodeWorkItem Item(string id, string region, params string[] inputs) =>
        new(id, MiniLmEmbeddingModel.ModelId, inputs, region);

    private static float[] Floats(NodeWorkResult r)
    {
        byte[] bytes = Convert.FromBase64String(r.VectorsBase64!);
        return MemoryMarshal.Cast<byte, float>(bytes).ToArray(); // little-endian, as on every machine this runs on
    }

    [Fact]
    public async Task Registers_heartbeats_and_answers_work_over_one_http2_connection()
    {
        await using var server = await FakeNodeServer.StartAsync();
        var log = new StringWriter();
        await using var agent = NewAgent(server, log);
        using var stop = new CancellationTokenSource();
        DateTimeOffset started = DateTimeOffset.UtcNow;
        Task run = agent.RunAsync(stop.Token);
        await agent.Registered.WaitAsync(Wait);

        // One challenge, one registration for its nonce, signed with the node's key; one live session.
        NodeRegisterRequest registration = Assert.Single(server.Registrations);
        Assert.Equal(agent.NodeId, registration.NodeId);
        Assert.Equal(NodeAgent.DefaultNodeId(Home, agent.PublicKey.Span), agent.NodeId);
        Assert.Equal(Assert.Single(server.IssuedNonces), registration.Nonce);
        Assert.Equal(Home, registration.Region);
        Assert.Equal([MiniLmEmbeddingModel.ModelId], registration.Models);
        Assert.Equal(18, registration.PriceMicroUsdPer1kTokens);
        Assert.Equal(2, registration.Capacity);
        Assert.True(Verifies(registration, agent.PublicKey));
        Assert.Equal(1, server.ChallengeAttempts);
        Assert.Equal(1, server.RegistrationAttempts);
        Assert.True(server.IsLive(Assert.Single(server.GrantedTokens)));
        Assert.Equal(FakeNodeServer.RevenueAccount, agent.RevenueAccount);

        // Heartbeats verify with the admitted key, their sequence grows, and their time is UTC and current.
        var beats = new List<NodeTelemetry>();
        for (int i = 0; i < 3; i++) beats.Add(await server.WaitForHeartbeatAsync(_ => true));
        for (int i = 1; i < beats.Count; i++) Assert.True(beats[i].Sequence > beats[i - 1].Sequence);
        foreach (var t in beats)
        {
            Assert.Equal(agent.NodeId, t.NodeId);
            Assert.Equal(TimeSpan.Zero, t.At.Offset);
            Assert.InRange(t.At, started, DateTimeOffset.UtcNow);
            Assert.Contains(t.PowerSource, new[] { NodePowerMeter.ModeledSource, NodePowerMeter.NvidiaSmiSource });
            if (t.PowerSource == NodePowerMeter.ModeledSource)
                Assert.Equal(NodePowerMeter.Modeled(t.Utilization), t.PowerWatts, 0.01);
            Assert.InRange(t.Utilization, 0, 1);
            Assert.True(t.PowerWatts > 0);
        }
        Assert.Equal(0, server.BadHeartbeats);

        // Work down the stream, vectors back.
        string[] texts = ["A man is playing a guitar.", "GPUs are rented by the hour on the ComputeGrid exchange."];
        NodeWorkResult result = await server.RunAsync(Item("w1", Home, texts));
        Assert.Null(result.Error);
        Assert.Equal(384, result.Dimensions);
        float[] vectors = Floats(result);
        Assert.Equal(texts.Length * 384, vectors.Length);
        int tokens = texts.Sum(t => fixture.Model.Tokenize(t).TokenCount);
        Assert.Equal(tokens, result.Tokens);
        for (int i = 0; i < texts.Length; i++)
        {
            ReadOnlySpan<float> v = vectors.AsSpan(i * 384, 384);
            Assert.Equal(1.0, Vectors.Norm(v), 1e-4);
            Assert.True(Vectors.Cosine(v, fixture.EmbedOne(texts[i])) > 0.9999);
        }
        Assert.Equal(0, result.NetworkMs);
        Assert.True(result.ModelMs > 0);
        Assert.True(result.QueueMs >= 0);

        // The telemetry counts it.
        NodeTelemetry after = await server.WaitForHeartbeatAsync(t => t.Requests >= 1);
        Assert.Equal(1, after.Requests);
        Assert.Equal(tokens, after.Tokens);
        Assert.True(after.EwmaModelMs > 0);
        Assert.Equal(1, agent.RequestsCompleted);

        // Everything went over HTTP/2, on one connection.
        Assert.All(server.Protocols, p => Assert.Equal("HTTP/2", p));
        Assert.Single(server.Connections.Distinct());
        Assert.Equal(1, server.StreamsOpened);

        stop.Cancel();
        await run.WaitAsync(Wait);
        Assert.Contains("work stream connected (HTTP/2)", log.ToString());
        Assert.Contains("stopped", log.ToString());
    }

    [Fact]
    public async Task Simulated_distance_waits_the_rtt_and_reports_it_as_network_time()
    {
        await using var server = await FakeNodeServer.StartAsync();
        await using var agent = NewAgent(server, new StringWriter(), o => new NodeAgentOptions
        {
            Server = o.Server, Region = "Frankfurt", PriceMicroUsdPer1kTokens = 0, Capacity = 4, SimulateDistance = true,
            HeartbeatInterval = o.HeartbeatInterval, ReconnectMinDelay = o.ReconnectMinDelay, ReconnectMaxDelay = o.ReconnectMaxDelay,
        });
        using var stop = new CancellationTokenSource();
        Task run = agent.RunAsync(stop.Token);
        await agent.Registered.WaitAsync(Wait);

        Assert.True(Latency.TryGetRegion(Home, out int home));
        Assert.True(Latency.TryGetRegion("tokyo", out int tokyo));
        double rtt = Latency.Rtt(tokyo, home);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        NodeWorkResult far = await server.RunAsync(Item("far", "tokyo", "How do I reset my password?"));
        Assert.Null(far.Error);
        Assert.Equal(rtt, far.NetworkMs);
        Assert.True(watch.Elapsed.TotalMilliseconds >= rtt, $"answered in {watch.Elapsed.TotalMilliseconds} ms, the RTT is {rtt} ms");

        // The request region may be a name; the same region is one millisecond away.
        NodeWorkResult near = await server.RunAsync(Item("near", "Frankfurt", "I love pizza"));
        Assert.Equal(LatencyMatrix.IntraRegionRttMs, near.NetworkMs);

        stop.Cancel();
        await run.WaitAsync(Wait);
    }

    [Fact]
    public async Task Work_it_cannot_do_comes_back_as_an_error()
    {
        await using var server = await FakeNodeServer.StartAsync();
        await using var agent = NewAgent(server, new StringWriter());
        using var stop = new CancellationTokenSource();
        Task run = agent.RunAsync(stop.Token);
        await agent.Registered.WaitAsync(Wait);

        NodeWorkResult wrongModel = await server.RunAsync(new NodeWorkItem("m", "text-embedding-3-large", ["hello"], Home));
        Assert.Contains(MiniLmEmbeddingModel.ModelId, wrongModel.Error);
        Assert.Null(wrongModel.VectorsBase64);

        NodeWorkResult tooLong = await server.RunAsync(Item("long", Home, "ok", string.Join(' ', Enumerable.Repeat("word", 300))));
        Assert.Contains("at most 256", tooLong.Error);

        NodeWorkResult empty = await server.RunAsync(Item("empty", Home));
        Assert.NotNull(empty.Error);
        Assert.Equal(3, agent.RequestsFailed);

        // The node goes on working.
        Assert.Null((await server.RunAsync(Item("fine", Home, "still here"))).Error);
        stop.Cancel();
        await run.WaitAsync(Wait);
    }

    [Fact]
    public async Task Reconnects_after_the_server_drops_the_work_stream()
    {
        await using var server = await FakeNodeServer.StartAsync();
        var log = new StringWriter();
        await using var agent = NewAgent(server, log);
        using var stop = new CancellationTokenSource();
        Task run = agent.RunAsync(stop.Token);
        await agent.Registered.WaitAsync(Wait);
        Assert.Null((await server.RunAsync(Item("before", Home, "first"))).Error);

        server.DropStream(); // the response ends
        await server.WaitForAsync(() => server.StreamsOpened >= 2);
        Assert.Null((await server.RunAsync(Item("after-end", Home, "second"))).Error);

        server.DropStream(abort: true); // the stream is reset
        await server.WaitForAsync(() => server.StreamsOpened >= 3);
        NodeWorkResult last = await server.RunAsync(Item("after-reset", Home, "third", "and fourth"));
        Assert.Null(last.Error);
        Assert.Equal(2 * 384, Floats(last).Length);

        Assert.All(server.Protocols, p => Assert.Equal("HTTP/2", p));
        Assert.Contains("work stream lost", log.ToString());
        stop.Cancel();
        await run.WaitAsync(Wait);
    }

    [Fact]
    public async Task Retries_registration_until_the_server_answers()
    {
        await using var server = await FakeNodeServer.StartAsync();
        server.ChallengeFailuresLeft = 1;
        server.RegistrationFailuresLeft = 1;
        var log = new StringWriter();
        await using var agent = NewAgent(server, log);
        using var stop = new CancellationTokenSource();
        Task run = agent.RunAsync(stop.Token);
        await agent.Registered.WaitAsync(Wait);
        // A 503 to the challenge, then a 503 to the registration, then both accepted: a fresh challenge every time.
        Assert.Equal(3, server.ChallengeAttempts);
        Assert.Equal(2, server.RegistrationAttempts);
        Assert.Equal(2, server.IssuedNonces.Count);
        Assert.Equal(server.IssuedNonces[1], Assert.Single(server.Registrations).Nonce);
        Assert.Contains("failed (503 Service Unavailable: starting up)", log.ToString());
        Assert.Null((await server.RunAsync(Item("w", Home, "registered at last"))).Error);
        stop.Cancel();
        await run.WaitAsync(Wait);
    }

    [Fact]
    public async Task The_registration_signature_verifies_with_the_node_key_and_binds_its_offer()
    {
        await using var server = await FakeNodeServer.StartAsync();
        await using var agent = NewAgent(server, new StringWriter());
        using var stop = new CancellationTokenSource();
        Task run = agent.RunAsync(stop.Token);
        await agent.Registered.WaitAsync(Wait);

        // The fake server accepted it only after NodeSigning.VerifyBytes with the admitted key; check it again here.
        NodeRegisterRequest r = Assert.Single(server.Registrations);
        string nonce = Assert.Single(server.IssuedNonces);
        string[] models = [MiniLmEmbeddingModel.ModelId];
        Assert.Equal(64, Convert.FromBase64String(r.SignatureBase64).Length);
        Assert.True(Verifies(r.SignatureBase64, agent.PublicKey, agent.NodeId, nonce, Home, models, 18, 2));

        // The signature is over the nonce and the whole offer: the same signature for any other one does not verify.
        Assert.False(Verifies(r.SignatureBase64, agent.PublicKey, agent.NodeId + "-x", nonce, Home, models, 18, 2));
        Assert.False(Verifies(r.SignatureBase64, agent.PublicKey, agent.NodeId, nonce + "x", Home, models, 18, 2));
        Assert.False(Verifies(r.SignatureBase64, agent.PublicKey, agent.NodeId, nonce, "tokyo", models, 18, 2));
        Assert.False(Verifies(r.SignatureBase64, agent.PublicKey, agent.NodeId, nonce, Home, ["text-embedding-3-small"], 18, 2));
        Assert.False(Verifies(r.SignatureBase64, agent.PublicKey, agent.NodeId, nonce, Home, models, 17, 2));
        Assert.False(Verifies(r.SignatureBase64, agent.PublicKey, agent.NodeId, nonce, Home, models, 18, 3));
        // Nor does it verify with another key.
        Assert.False(Verifies(r.SignatureBase64, NodeSigning.NewKeyPair().PublicKey, agent.NodeId, nonce, Home, models, 18, 2));

        stop.Cancel();
        await run.WaitAsync(Wait);
    }

    [Theory]
    [InlineData("not-admitted", 404, "challenge", "No admitted node", 1, 0)]
    [InlineData("admitted-with-another-key", 401, "registration", "The signature does not verify with the node's admitted key.", 1, 1)]
    [InlineData("price-above-ceiling", 403, "registration", "The price is above the node's admitted ceiling.", 1, 1)]
    public async Task A_refused_challenge_or_registration_is_final(string refusal, int status, string step, string detail, int challenges, int registrations)
    {
        await using var server = await FakeNodeServer.StartAsync();
        await using var agent = NewAgent(server, new StringWriter(), admit: false);
        if (refusal == "admitted-with-another-key") server.Admit(agent.NodeId, NodeSigning.NewKeyPair().PublicKey);
        if (refusal == "price-above-ceiling") server.Admit(agent.NodeId, agent.PublicKey.Span, priceCeiling: 17);

        var e = await Assert.ThrowsAsync<NodeRegistrationException>(() => agent.RunAsync().WaitAsync(Wait));
        Assert.Equal(status, e.StatusCode);
        Assert.Contains($"refused node {agent.NodeId}'s {step} ({status} ", e.Message);
        Assert.Contains(detail, e.Message);
        Assert.Equal(challenges, server.ChallengeAttempts);
        Assert.Equal(registrations, server.RegistrationAttempts);
        Assert.Empty(server.GrantedTokens);
        await Assert.ThrowsAsync<NodeRegistrationException>(() => agent.Registered);
    }

    [Fact]
    public async Task Registers_again_when_the_server_forgets_the_node()
    {
        await using var server = await FakeNodeServer.StartAsync();
        await using var agent = NewAgent(server, new StringWriter());
        using var stop = new CancellationTokenSource();
        Task run = agent.RunAsync(stop.Token);
        await agent.Registered.WaitAsync(Wait);
        await server.WaitForHeartbeatAsync(_ => true);

        server.ForgetNode();
        await server.WaitForAsync(() => server.Registrations.Count >= 2);
        NodeRegisterRequest first = server.Registrations[0], again = server.Registrations[1];
        Assert.Equal(agent.NodeId, again.NodeId);
        // A new challenge answered with the same key: a fresh nonce, and a new token; the old one stays dead.
        Assert.NotEqual(first.Nonce, again.Nonce);
        Assert.Contains(again.Nonce, server.IssuedNonces);
        Assert.True(Verifies(again, agent.PublicKey));
        Assert.NotEqual(server.GrantedTokens[0], server.GrantedTokens[1]);
        Assert.False(server.IsLive(server.GrantedTokens[0]));
        await server.WaitForAsync(() => server.HeartbeatTokens.Contains(server.GrantedTokens[^1])); // heartbeats accepted with the new token
        Assert.Null((await server.RunAsync(Item("after", Home, "registered again"))).Error); // and the stream reopened with it
        stop.Cancel();
        await run.WaitAsync(Wait);
    }

    [Fact]
    public async Task Stopping_lets_work_in_progress_finish()
    {
        await using var server = await FakeNodeServer.StartAsync();
        await using var agent = NewAgent(server, new StringWriter(), o => new NodeAgentOptions
        {
            Server = o.Server, Region = Home, Capacity = 1, SimulateDistance = true, HeartbeatInterval = o.HeartbeatInterval,
        });
        using var stop = new CancellationTokenSource();
        Task run = agent.RunAsync(stop.Token);
        await agent.Registered.WaitAsync(Wait);

        // The farthest region from the node: its simulated RTT keeps the item in flight long enough to stop meanwhile.
        Assert.True(Latency.TryGetRegion(Home, out int home));
        int farthest = Enumerable.Range(0, Latency.Count).MaxBy(r => Latency.Rtt(r, home));
        Task<NodeWorkResult> pending = server.Expect("slow");
        await server.Work.Writer.WriteAsync(Item("slow", Latency.Regions[farthest], "in flight while the node stops"));
        await server.WaitForHeartbeatAsync(t => t.Inflight == 1);
        stop.Cancel();
        await run.WaitAsync(Wait);

        NodeWorkResult result = await pending.WaitAsync(Wait);
        Assert.Null(result.Error);
        Assert.Equal(Latency.Rtt(farthest, home), result.NetworkMs);
    }

    [Fact]
    public async Task The_key_file_is_created_owner_only_and_kept()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"cg-node-{Guid.NewGuid():N}");
        string keyFile = Path.Combine(dir, "node.key");
        try
        {
            var options = new NodeAgentOptions { Server = new Uri("http://127.0.0.1:1"), Region = "tokyo", Capacity = 1, KeyFile = keyFile };
            ReadOnlyMemory<byte> first;
            string id;
            await using (var agent = new NodeAgent(options, null, fixture.Model, Latency))
            {
                first = agent.PublicKey.ToArray();
                id = agent.NodeId;
            }
            Assert.Equal(32, new FileInfo(keyFile).Length);
            if (!OperatingSystem.IsWindows())
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
            Assert.StartsWith("tokyo-", id);

            await using (var again = new NodeAgent(options, null, fixture.Model, Latency))
            {
                Assert.Equal(first.ToArray(), again.PublicKey.ToArray());
                Assert.Equal(id, again.NodeId);
            }

            File.WriteAllBytes(keyFile, new byte[31]);
            Assert.Throws<InvalidDataException>(() => new NodeAgent(options, null, fixture.Model, Latency));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Bad_settings_are_refused()
    {
        NodeAgentOptions Ok() => new() { Server = new Uri("http://127.0.0.1:5081"), Region = Home, Capacity = 1 };
        void Refused(NodeAgentOptions o) => Assert.ThrowsAny<ArgumentException>(() => new NodeAgent(o, null, fixture.Model, Latency));

        var ok = Ok();
        Refused(new NodeAgentOptions { Server = ok.Server, Region = "atlantis", Capacity = 1 });
        Refused(new NodeAgentOptions { Server = ok.Server, Region = Home, Capacity = 0 });
        Refused(new NodeAgentOptions { Server = ok.Server, Region = Home, Capacity = 1, PriceMicroUsdPer1kTokens = -1 });
        Refused(new NodeAgentOptions { Server = new Uri("ftp://example.com"), Region = Home, Capacity = 1 });
        Refused(new NodeAgentOptions { Server = ok.Server, Region = Home, Capacity = 1, NodeId = "no spaces" });
        Refused(new NodeAgentOptions { Server = ok.Server, Region = Home, Capacity = 1, IntraOpThreads = 0 });
        using var fine = new NodeAgent(ok, null, fixture.Model, Latency);
        Assert.Equal(Home, fine.Region);
    }

    [Fact]
    public void Power_is_read_from_nvidia_smi_output_or_modeled()
    {
        Assert.Equal(200.75, NodePowerMeter.ParseWatts("120.50\n80.25\n"));
        Assert.Equal(71.3, NodePowerMeter.ParseWatts(" 71.30 \r\n[N/A]\n"));
        Assert.Null(NodePowerMeter.ParseWatts("[N/A]\n"));
        Assert.Null(NodePowerMeter.ParseWatts(""));
        Assert.Equal(35, NodePowerMeter.Modeled(0));
        Assert.Equal(100, NodePowerMeter.Modeled(1));
        Assert.Equal(100, NodePowerMeter.Modeled(7));
        Assert.Equal(67.5, NodePowerMeter.Modeled(0.5));
    }

    [Fact]
    public async Task Nvidia_smi_is_used_when_it_answers()
    {
        // Where a GPU is present the agent measures; the reading is a positive number of watts.
        if (NodePowerMeter.FindNvidiaSmi() is not { } smi) return;
        double? watts = await NodePowerMeter.QueryNvidiaSmiAsync(smi, CancellationToken.None);
        Assert.NotNull(watts);
        Assert.True(watts > 0);
    }
}
