using System.Collections.Concurrent;
using ComputeGrid.Chain.X402;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Chain;

/// <summary>What checking a payment found: valid (the nonce reserved), or the official reason it is not.</summary>
/// <param name="Response">The verifier's answer (an official reason code when invalid).</param>
/// <param name="Key">The authorization's key (token, payer, nonce); reserved when valid.</param>
/// <param name="Value">The signed value in micro-units (when valid).</param>
public readonly record struct X402Check(VerifyResponse Response, NonceKey Key, long Value)
{
    /// <summary>Whether the payment may be served.</summary>
    public bool IsValid => Response.IsValid;
}

/// <summary>
/// The x402 services of a server with a chain: what it asks for (<see cref="Requirements"/>: our token on our chain,
/// paid to our account), the verifier with its nonce registry (rebuilt from the durable store at start, so a restart
/// forgets no nonce), the chain checks the verifier cannot make (the nonce unused on chain, the payer's balance), the
/// durable intents and the settler. Shared by <c>POST /v1/embeddings</c> and the facilitator API.
/// </summary>
public sealed class X402Payments
{
    /// <summary>How long a payer's signature should stay valid (the official clients default to 60 s; a slow chain needs more).</summary>
    public const int MaxTimeoutSecondsDefault = 300;

    /// <summary>The most nonces remembered as used on chain (a cache; the chain stays the truth).</summary>
    public const int UsedOnChainCacheMax = 100_000;

    /// <summary>The official reason for a payer whose balance cannot cover the value.</summary>
    public const string InsufficientFunds = "insufficient_funds";

    /// <summary>Our reason for a payment on a network this server does not settle.</summary>
    public const string InvalidNetwork = "invalid_network";

    private readonly ConcurrentDictionary<NonceKey, bool> _usedOnChain = new();

    /// <summary>The services of <paramref name="chain"/>, with intents in <paramref name="store"/>.</summary>
    public X402Payments(ChainConnection chain, X402Store store, LedgerEngine ledger, TimeProvider time, int maxTimeoutSeconds = MaxTimeoutSecondsDefault)
    {
        Chain = chain;
        Store = store;
        Ledger = ledger;
        Time = time;
        Nonces = new InMemoryNonceRegistry();
        // Every nonce the store holds is used: served, being settled, settled, failed or released (a released one is never
        // sent, but reusing it would hand the same signature two fates; the payer signs a new one).
        foreach (NonceKey key in store.UsedKeys()) Nonces.MarkSettled(key);
        Verifier = new X402Verifier(Nonces);
        Requirements = new X402Requirements(chain.Info.ChainId, EvmAddress.Parse(chain.Info.Stablecoin), chain.Info.TokenName, chain.Info.TokenVersion,
            EvmAddress.Parse(chain.Info.PayTo), maxTimeoutSeconds);
        Settler = new X402Settler(chain, store, ledger, Nonces);
    }

    /// <summary>The chain.</summary>
    public ChainConnection Chain { get; }

    /// <summary>The durable intents.</summary>
    public X402Store Store { get; }

    /// <summary>The ledger (payer accounts, receivable, custody, losses).</summary>
    public LedgerEngine Ledger { get; }

    /// <summary>The clock validity windows are judged by.</summary>
    public TimeProvider Time { get; }

    /// <summary>Nonces in flight or used.</summary>
    public InMemoryNonceRegistry Nonces { get; }

    /// <summary>The signature and window checks.</summary>
    public X402Verifier Verifier { get; }

    /// <summary>What the server asks payers for.</summary>
    public X402Requirements Requirements { get; }

    /// <summary>Sends and follows settlements.</summary>
    public X402Settler Settler { get; }

    /// <summary>
    /// Checks <paramref name="payload"/> against <paramref name="requirements"/> (ours, or a facilitator caller's on our
    /// chain and token): the verifier's rules, then the chain's (nonce unused on chain, balance ≥ value). With
    /// <paramref name="reserve"/> the nonce is reserved when valid (the caller must then persist an intent or release it).
    /// </summary>
    public async Task<X402Check> CheckAsync(PaymentPayload payload, PaymentRequirements requirements, bool reserve, CancellationToken ct)
    {
        if (requirements.Network != Requirements.Network)
            return Invalid(payload, InvalidNetwork, $"this facilitator settles {Requirements.Network} only");
        if (!EvmAddress.TryParse(requirements.Asset, out EvmAddress asset) || asset != Requirements.Domain.VerifyingContract)
            return Invalid(payload, X402Reasons.Of(X402Verdict.AssetMismatch)!, $"this facilitator settles {Requirements.Domain.VerifyingContract.ToChecksumString()} only");
        DateTimeOffset now = Time.GetUtcNow();
        NonceKey key = default;
        VerifyResponse verdict = reserve ? Verifier.VerifyAndReserve(payload, requirements, now, out key) : Verifier.Verify(payload, requirements, now);
        if (!reserve && verdict.IsValid) Verifier.Check(payload, requirements, now, out key, out _);
        if (!verdict.IsValid) return new X402Check(verdict, key, 0);
        // The value moves as a long through the ledger; nobody holds 9.2 million million dollars of it.
        if (!Uint256.TryParse(payload.Payload.Authorization!.Value, out Bytes32 raw) || !Uint256.TryToInt64(raw, out long value))
        {
            if (reserve) Nonces.Release(key);
            return Invalid(payload, InsufficientFunds, "the value exceeds any balance of the token");
        }
        try
        {
            if (await UsedOnChainAsync(key))
            {
                Nonces.MarkSettled(key);
                return Invalid(payload, X402Reasons.Of(X402Verdict.NonceAlreadyUsed)!, "the nonce is used on chain");
            }
            long balance = await Chain.Stablecoin.BalanceOfAsync(key.From.ToString()).WaitAsync(ct);
            if (balance < value)
            {
                if (reserve) Nonces.Release(key);
                return Invalid(payload, InsufficientFunds, $"the payer holds {balance}, the authorization is for {value}");
            }
        }
        catch
        {
            if (reserve) Nonces.Release(key);
            throw;
        }
        return new X402Check(verdict, key, value);
    }

    /// <summary>Whether the token says the nonce is used (cached once used: a used nonce never comes back).</summary>
    public async Task<bool> UsedOnChainAsync(NonceKey key)
    {
        if (_usedOnChain.ContainsKey(key)) return true;
        bool used = await Chain.Stablecoin.AuthorizationStateAsync(key.From.ToString(), key.Nonce.ToString());
        if (used && _usedOnChain.Count < UsedOnChainCacheMax) _usedOnChain.TryAdd(key, true);
        return used;
    }

    /// <summary>The intent of a checked payment, ready to persist.</summary>
    public static X402Intent IntentOf(PaymentPayload payload, X402Check check, string requestId, long cost, X402Source source)
    {
        ExactEvmAuthorization a = payload.Payload.Authorization!;
        return new X402Intent
        {
            Key = check.Key, PayTo = EvmAddress.Parse(a.To), Value = check.Value, ValidAfter = a.ValidAfter, ValidBefore = a.ValidBefore,
            Signature = payload.Payload.Signature!, RequestId = requestId, Cost = cost, Source = source,
        };
    }

    private static X402Check Invalid(PaymentPayload payload, string reason, string message) =>
        new(new VerifyResponse(false, reason, message, payload.Payload.Authorization?.From), default, 0);
}
