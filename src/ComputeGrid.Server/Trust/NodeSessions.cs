using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using ComputeGrid.Inference.Nodes;
using Microsoft.AspNetCore.Authentication;

namespace ComputeGrid.Server.Trust;

/// <summary>One registration of an admitted node: its token's hash, its identity, and a signal that ends it.</summary>
public sealed class NodeSession : IDisposable
{
    private readonly CancellationTokenSource _ended = new();

    internal NodeSession(NodeAdmission admission, Principal principal, string id, byte[] tokenHash)
    {
        Admission = admission;
        Id = id;
        TokenHash = tokenHash;
        Ticket = new AuthenticationTicket(new ClaimsPrincipal(new CallerIdentity(principal, Scopes.None, id, TrustSchemes.NodeSession)), TrustSchemes.NodeSession);
    }

    /// <summary>The admitted node.</summary>
    public NodeAdmission Admission { get; }

    /// <summary>The session's id (logs, the caller's credential id).</summary>
    public string Id { get; }

    internal byte[] TokenHash { get; }

    internal AuthenticationTicket Ticket { get; }

    /// <summary>Cancelled when the session ends: the node registered again, or its admission was revoked.</summary>
    public CancellationToken Ended => _ended.Token;

    internal void End()
    {
        try { _ended.Cancel(); }
        catch (ObjectDisposedException) { }
    }

    /// <inheritdoc />
    public void Dispose() => _ended.Dispose();
}

/// <summary>What became of a node's registration.</summary>
public enum NodeRegisterOutcome
{
    /// <summary>A new session.</summary>
    Ok,
    /// <summary>No admitted (unrevoked) node has that id.</summary>
    NotAdmitted,
    /// <summary>The nonce was never issued for this node, was used already, or expired.</summary>
    BadNonce,
    /// <summary>The signature does not verify with the node's admitted key.</summary>
    BadSignature,
    /// <summary>The price is above the ceiling the operator admitted the node with.</summary>
    AboveCeiling,
}

/// <summary>
/// Node registration by challenge and response, and the sessions it opens. A node asks for a nonce, signs it (with what
/// it offers) with the Ed25519 key an operator admitted it with, and gets a session token. Each registration opens a
/// new session and ends the node's previous one (its work stream closes): a token is never handed to anyone twice,
/// and knowing a node's public key gives nothing. Tokens are random (256 bits), kept only as hashes, in memory: a
/// restarted server asks every node to register again.
/// </summary>
public sealed class NodeSessions(TrustStore store, ServerLimits limits, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, (string NodeId, DateTimeOffset Expires, long Issued)> _challenges = new(StringComparer.Ordinal);
    private long _issued;

    /// <summary>Challenges kept per node: a new one pushes out the node's oldest.</summary>
    public const int ChallengesPerNodeMax = 4;
    private readonly ConcurrentDictionary<string, NodeSession> _byNode = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<TokenHash, NodeSession> _byTokenHash = new();

    // A session token's SHA-256 as a value, so looking it up allocates nothing.
    private readonly record struct TokenHash(ulong A, ulong B, ulong C, ulong D)
    {
        public static TokenHash Of(ReadOnlySpan<byte> hash) => new(
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(hash), System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(hash[16..]), System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(hash[24..]));
    }
    private readonly Lock _lock = new();

    /// <summary>
    /// A new challenge for an admitted node, or null when the node is not admitted. Challenges are never refused for
    /// room: a new one pushes out the node's oldest (at most <see cref="ChallengesPerNodeMax"/> per node) and, past
    /// <see cref="ServerLimits.NodeChallengesMax"/> in all, the oldest of all. So no flood of challenges can keep a node
    /// from registering: its own fresh challenge is always the newest, and it answers it at once.
    /// </summary>
    public (string Nonce, DateTimeOffset Expires)? Challenge(string nodeId)
    {
        if (store.FindNode(nodeId) is not { Revoked: null }) return null;
        DateTimeOffset now = time.GetUtcNow();
        lock (_lock)
        {
            foreach (var (nonce, c) in _challenges)
                if (c.Expires <= now) _challenges.TryRemove(nonce, out _);
            var mine = _challenges.Where(c => c.Value.NodeId == nodeId).OrderBy(c => c.Value.Issued).ToList();
            for (int i = 0; i <= mine.Count - ChallengesPerNodeMax; i++) _challenges.TryRemove(mine[i].Key, out _);
            while (_challenges.Count >= limits.NodeChallengesMax) _challenges.TryRemove(_challenges.MinBy(c => c.Value.Issued).Key, out _);
            string fresh = ApiKeyFormat.NewSecret();
            DateTimeOffset expires = now + limits.NodeChallengeLifetime;
            _challenges[fresh] = (nodeId, expires, ++_issued);
            return (fresh, expires);
        }
    }

    /// <summary>Checks a signed registration and opens a session, ending the node's previous one.</summary>
    public NodeRegisterOutcome Register(string nodeId, string nonce, byte[] message, byte[] signature, long price, out NodeSession? session, out string? token)
    {
        session = null;
        token = null;
        if (store.FindNode(nodeId) is not { Revoked: null } admission || store.Find(admission.Principal) is not { Disabled: null } principal)
            return NodeRegisterOutcome.NotAdmitted;
        // The nonce is used up whatever follows: a signature cannot be tried twice against it.
        if (!_challenges.TryRemove(nonce, out var challenge) || challenge.NodeId != nodeId || challenge.Expires <= time.GetUtcNow())
            return NodeRegisterOutcome.BadNonce;
        if (!NodeSigning.VerifyBytes(message, signature, admission.PublicKey)) return NodeRegisterOutcome.BadSignature;
        if (price > admission.PriceCeilingMicroUsdPer1kTokens) return NodeRegisterOutcome.AboveCeiling;

        string secret = ApiKeyFormat.NewSecret();
        token = ApiKeyFormat.SessionPrefix + secret;
        byte[] hash = SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(token));
        session = new NodeSession(admission, principal, Convert.ToHexStringLower(hash.AsSpan(0, 8)), hash);
        lock (_lock)
        {
            if (_byNode.TryGetValue(nodeId, out NodeSession? previous)) Remove(previous);
            _byNode[nodeId] = session;
            _byTokenHash[TokenHash.Of(hash)] = session;
        }
        return NodeRegisterOutcome.Ok;
    }

    /// <summary>The session of a presented token, or null.</summary>
    public NodeSession? Authenticate(ReadOnlySpan<char> token)
    {
        if (token.Length != ApiKeyFormat.SessionPrefix.Length + ApiKeyFormat.SecretChars || !token.StartsWith(ApiKeyFormat.SessionPrefix, StringComparison.Ordinal)) return null;
        Span<byte> ascii = stackalloc byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            if (token[i] > 127) return null;
            ascii[i] = (byte)token[i];
        }
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(ascii, hash);
        if (!_byTokenHash.TryGetValue(TokenHash.Of(hash), out NodeSession? s)) return null;
        // The admission may have been revoked (or the node disabled) since the session opened.
        if (store.FindNode(s.Admission.NodeId) is not { Revoked: null } || store.Find(s.Admission.Principal) is not { Disabled: null })
        {
            End(s.Admission.NodeId);
            return null;
        }
        return CryptographicOperations.FixedTimeEquals(hash, s.TokenHash) ? s : null;
    }

    /// <summary>The current session of a node, or null.</summary>
    public NodeSession? Current(string nodeId) => _byNode.GetValueOrDefault(nodeId);

    /// <summary>Ends a node's session (its admission was revoked).</summary>
    public void End(string nodeId)
    {
        lock (_lock)
            if (_byNode.TryRemove(nodeId, out NodeSession? s)) Remove(s);
    }

    private void Remove(NodeSession s)
    {
        _byTokenHash.TryRemove(TokenHash.Of(s.TokenHash), out _);
        s.End();
    }
}
