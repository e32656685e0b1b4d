using ComputeGrid.Inference.Nodes;
using ComputeGrid.Server.Trust;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.Tests;

/// <summary>Node challenges and sessions on their own: no flood of challenges keeps a node from registering.</summary>
public sealed class NodeSessionsTests : IDisposable
{
    private readonly string _dir = TestServer.TempDir("sessions");

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public void A_flood_of_challenges_pushes_out_old_ones_and_never_keeps_a_node_from_registering()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        using TrustStore store = TrustStore.Open(_dir, time);
        OperatorKeyFile.Bootstrap(store, _dir);
        ulong op = store.List(PrincipalKind.Operator, 0, 1)[0].Id;
        Principal provider = store.CreatePrincipal(PrincipalKind.Provider, "acme", op);
        var (privateKey, publicKey) = NodeSigning.NewKeyPair();
        store.AdmitNode(provider.Id, "n1", publicKey, 100, op);
        store.AdmitNode(provider.Id, "n2", NodeSigning.NewKeyPair().PublicKey, 100, op);
        var sessions = new NodeSessions(store, new ServerLimits { NodeChallengesMax = 10 }, time);

        // An attacker asks for challenges of n1 (its id is public) and of n2, far past every limit.
        var flooded = Enumerable.Range(0, 50).Select(i => sessions.Challenge(i % 2 == 0 ? "n1" : "n2")!.Value.Nonce).ToList();
        Assert.Null(sessions.Challenge("nobody"));
        // The real node asks now: its challenge is the newest, and it registers with it.
        string nonce = sessions.Challenge("n1")!.Value.Nonce;
        byte[] message = NodeSigning.SessionMessage("n1", nonce, "frankfurt", ["all-MiniLM-L6-v2"], 20, 4);
        Assert.Equal(NodeRegisterOutcome.Ok, sessions.Register("n1", nonce, message, NodeSigning.SignBytes(message, privateKey), 20, out NodeSession? session, out string? token));
        Assert.NotNull(session);
        Assert.StartsWith(ApiKeyFormat.SessionPrefix, token);
        // The flood's first challenges were pushed out: signing one of them now gets nowhere.
        byte[] old = NodeSigning.SessionMessage("n1", flooded[0], "frankfurt", ["all-MiniLM-L6-v2"], 20, 4);
        Assert.Equal(NodeRegisterOutcome.BadNonce, sessions.Register("n1", flooded[0], old, NodeSigning.SignBytes(old, privateKey), 20, out _, out _));
        // A nonce is used once, and expires.
        Assert.Equal(NodeRegisterOutcome.BadNonce, sessions.Register("n1", nonce, message, NodeSigning.SignBytes(message, privateKey), 20, out _, out _));
        string late = sessions.Challenge("n1")!.Value.Nonce;
        time.Advance(TimeSpan.FromSeconds(61));
        byte[] lateMessage = NodeSigning.SessionMessage("n1", late, "frankfurt", ["all-MiniLM-L6-v2"], 20, 4);
        Assert.Equal(NodeRegisterOutcome.BadNonce, sessions.Register("n1", late, lateMessage, NodeSigning.SignBytes(lateMessage, privateKey), 20, out _, out _));
        // The session's token authenticates; a second registration replaces it.
        Assert.Same(session, sessions.Authenticate(token));
        string again = sessions.Challenge("n1")!.Value.Nonce;
        byte[] m2 = NodeSigning.SessionMessage("n1", again, "frankfurt", ["all-MiniLM-L6-v2"], 20, 4);
        Assert.Equal(NodeRegisterOutcome.Ok, sessions.Register("n1", again, m2, NodeSigning.SignBytes(m2, privateKey), 20, out _, out string? token2));
        Assert.Null(sessions.Authenticate(token));
        Assert.NotNull(sessions.Authenticate(token2));
        Assert.True(session!.Ended.IsCancellationRequested);
    }
}
