using System.Collections.Concurrent;

namespace ComputeGrid.Chain.X402;

/// <summary>
/// An EIP-3009 nonce as the token sees it: nonces are per authorizer (<c>authorizationState(authorizer, nonce)</c>) and
/// per token contract, so the key is all three.
/// </summary>
public readonly record struct NonceKey(EvmAddress Asset, EvmAddress From, Bytes32 Nonce);

/// <summary>What a reservation attempt found. Ordered by precedence.</summary>
public enum NonceReservation
{
    /// <summary>The caller now holds the nonce: it alone may serve and settle this authorization.</summary>
    Reserved = 0,

    /// <summary>Another request holds it (verified, not yet settled).</summary>
    InFlight = 1,

    /// <summary>An authorization with this nonce was settled (or is known used on chain).</summary>
    AlreadySettled = 2,
}

/// <summary>
/// The authorizations this server has seen, so that one signed authorization buys one answer: a nonce is reserved
/// before the work is done, released if nothing was sent to the chain, marked settled once its transaction is
/// submitted. The chain refuses a used nonce anyway; this refuses it before the service is given. Implementations are
/// safe for concurrent use, and <see cref="TryReserve"/> is atomic: of many concurrent callers, one wins.
/// </summary>
public interface INonceRegistry
{
    /// <summary>Whether <paramref name="key"/> is in flight or settled (a read; it reserves nothing).</summary>
    bool IsUsed(in NonceKey key);

    /// <summary>Reserves <paramref name="key"/> for the caller if it is free.</summary>
    NonceReservation TryReserve(in NonceKey key);

    /// <summary>Frees an in-flight reservation (verification passed but nothing was sent). False if it was not in flight.</summary>
    bool Release(in NonceKey key);

    /// <summary>Marks <paramref name="key"/> settled, reserved or not; it is never free again. False if it already was settled.</summary>
    bool MarkSettled(in NonceKey key);
}

/// <summary>
/// <see cref="INonceRegistry"/> in memory (one dictionary, compare-and-swap transitions): for tests, benchmarks and the
/// facilitator role with no durable store. The server backs the same contract durably, so that a restart forgets nothing.
/// </summary>
public sealed class InMemoryNonceRegistry : INonceRegistry
{
    private enum State : byte { InFlight = 1, Settled = 2 }

    private readonly ConcurrentDictionary<NonceKey, State> _states = new();

    /// <summary>Nonces held (in flight or settled).</summary>
    public int Count => _states.Count;

    /// <inheritdoc />
    public bool IsUsed(in NonceKey key) => _states.ContainsKey(key);

    /// <inheritdoc />
    public NonceReservation TryReserve(in NonceKey key)
    {
        if (_states.TryAdd(key, State.InFlight)) return NonceReservation.Reserved;
        return _states.TryGetValue(key, out var s) && s == State.Settled ? NonceReservation.AlreadySettled : NonceReservation.InFlight;
    }

    /// <inheritdoc />
    public bool Release(in NonceKey key) => _states.TryRemove(new KeyValuePair<NonceKey, State>(key, State.InFlight));

    /// <inheritdoc />
    public bool MarkSettled(in NonceKey key)
    {
        // Free → settled, or in flight → settled; each step is a compare-and-swap, retried if another thread moved first.
        while (true)
        {
            if (_states.TryAdd(key, State.Settled)) return true;
            if (!_states.TryGetValue(key, out var s)) continue;
            if (s == State.Settled) return false;
            if (_states.TryUpdate(key, State.Settled, State.InFlight)) return true;
        }
    }
}
