using System.Collections.Concurrent;
using System.Globalization;
using System.Numerics;
using ComputeGrid.Chain.X402;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Nethereum.Hex.HexConvertors.Extensions;
using Nethereum.RPC.Eth.DTOs;

namespace ComputeGrid.Server.Chain;

/// <summary>A settlement that cannot be sent at all (the chain refuses the call: nonce used, funds short, window closed).</summary>
public sealed class X402SettleException(string reason, Exception? inner = null) : Exception(reason, inner);

/// <summary>
/// The server as its own x402 facilitator: sends each authorization's <c>transferWithAuthorization</c> from the server's
/// account and follows it to its end. Rules:
/// <list type="bullet">
/// <item>An intent is durable before anything is sent (<see cref="X402Store"/>); a transaction is signed offline and its
/// hash recorded before it is broadcast, so after a crash the same transaction is rebroadcast (or, dropped, re-signed,
/// the old hash kept): an authorization is never sent twice in a way that could both land — and the token refuses a used
/// nonce anyway.</item>
/// <item>A restart (<see cref="RecoverAsync"/>) takes every Reserved and Sent intent: Reserved ones are sent, Sent ones
/// followed. Before re-signing it asks the chain (<c>authorizationState</c>): a nonce already used while none of our
/// transactions mined is someone else's; one of ours mined is settled, never sent again.</item>
/// <item>Mined with success and N confirmations: the ledger posts custody → receivable (<see cref="X402Ledger.Settled"/>),
/// then the intent is Settled. Reverted, expired before mined, or the nonce used by another transaction: the ledger posts
/// losses → receivable and the intent is Failed, logged as an error and listed at <c>GET /api/chain/settlements?state=failed</c>.
/// The ledger write comes first and is idempotent (same id), so a crash between the two repeats it harmlessly.</item>
/// <item>Sends are serialized (one signer, one account nonce sequence); following runs in one background loop.</item>
/// </list>
/// </summary>
public sealed class X402Settler : IAsyncDisposable
{
    /// <summary>How often sent transactions are checked (a block on a real chain takes longer: the checks are cheap).</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>The most intents checked in one round (the rest wait for the next).</summary>
    public const int CheckedPerRoundMax = 512;

    /// <summary>How many times a broadcast the chain answers with a transient error (nonce race) is re-signed.</summary>
    public const int SendAttemptsMax = 4;

    private readonly ChainConnection _chain;
    private readonly X402Store _store;
    private readonly LedgerEngine _ledger;
    private readonly INonceRegistry _nonces;
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly ConcurrentDictionary<NonceKey, X402Intent> _following = new();
    private readonly ConcurrentDictionary<NonceKey, TaskCompletionSource<X402State>> _waiters = new();
    private readonly ConcurrentDictionary<NonceKey, X402Intent> _deferred = new();
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;
    private long _sent, _settled, _failed;

    /// <summary>A settler for the server's chain, store, ledger and nonce registry.</summary>
    public X402Settler(ChainConnection chain, X402Store store, LedgerEngine ledger, INonceRegistry nonces) =>
        (_chain, _store, _ledger, _nonces) = (chain, store, ledger, nonces);

    /// <summary>Where failures (errors) and retries (warnings) are logged.</summary>
    public ILogger Log { get; set; } = NullLogger.Instance;

    /// <summary>Transactions broadcast since start.</summary>
    public long SentTotal => Interlocked.Read(ref _sent);

    /// <summary>Authorizations settled since start.</summary>
    public long SettledTotal => Interlocked.Read(ref _settled);

    /// <summary>Authorizations that finally failed since start.</summary>
    public long FailedTotal => Interlocked.Read(ref _failed);

    /// <summary>Sent transactions not yet final.</summary>
    public int Following => _following.Count;

    /// <summary>Resumes every unfinished intent (before the server takes requests), then starts following in the background.</summary>
    public async Task RecoverAsync(CancellationToken ct)
    {
        int resent = 0, followed = 0;
        foreach (X402Intent i in _store.List([X402State.Reserved, X402State.Sent], int.MaxValue))
        {
            if (i.State == X402State.Sent)
            {
                _following[i.Key] = i;
                followed++;
                continue;
            }
            try
            {
                // Served (or running) when the process died: its credit may be missing if the crash came right after the intent.
                if (i.Source == X402Source.Embeddings) await EnsureCreditAsync(i, ct);
                await SendAsync(i, ct);
                resent++;
            }
            catch (X402SettleException e) { Log.LogError("x402 settlement of {Payer} nonce {Nonce} failed at recovery: {Reason}", i.Key.From, i.Key.Nonce, e.Message); }
            catch (Exception e) when (e is HttpRequestException or Nethereum.JsonRpc.Client.RpcClientUnknownException or Nethereum.JsonRpc.Client.RpcClientTimeoutException)
            {
                _store.NoteError(i.Key, e.Message);
                Log.LogWarning("x402 settlement of {Payer} nonce {Nonce} not sent at recovery, retried later: {Reason}", i.Key.From, i.Key.Nonce, e.Message);
            }
        }
        if (resent + followed > 0) Log.LogInformation("x402 recovery: {Resent} intents sent, {Followed} transactions followed", resent, followed);
        _loop = Task.Run(() => RunAsync(_stopping.Token), CancellationToken.None);
    }

    /// <summary>
    /// Signs the authorization's transaction, records its hash, broadcasts it and returns the hash (without waiting for a
    /// block). The chain refusing the call outright (its gas estimate reverts) makes the intent Failed at once.
    /// </summary>
    /// <exception cref="X402SettleException">The chain refuses this authorization; the intent is Failed (and, for a paid request, written off).</exception>
    public async Task<string> SendAsync(X402Intent intent, CancellationToken ct)
    {
        await _sending.WaitAsync(ct);
        try
        {
            for (int attempt = 1; ; attempt++)
            {
                string raw;
                try { raw = await SignAsync(intent); }
                catch (Exception e) when (IsRevert(e, out string reason))
                {
                    // A re-sign refused because an earlier transaction of this intent was mined: that one settles it.
                    if (intent.AllTxHashes.Any() && await MinedByUsAsync(intent))
                    {
                        _following[intent.Key] = intent;
                        return intent.TxHash ?? "";
                    }
                    await FailAsync(intent, $"the chain refuses the authorization: {reason}", CancellationToken.None);
                    throw new X402SettleException(reason, e);
                }
                string hash = Nethereum.Util.Sha3Keccack.Current.CalculateHashFromHex(raw).EnsureHexPrefix();
                _store.MarkSent(intent.Key, hash, raw);
                intent = intent with { State = X402State.Sent, PriorTxHashes = Prior(intent, hash), TxHash = hash, RawTx = raw };
                // Followed by the background loop only once the broadcast has been tried: a loop round between the record and
                // the broadcast would find the transaction nowhere, take it for dropped and rebroadcast or re-sign it.
                try
                {
                    await _chain.Web3.Eth.Transactions.SendRawTransaction.SendRequestAsync(raw);
                    Interlocked.Increment(ref _sent);
                    _following[intent.Key] = intent;
                    return hash;
                }
                catch (Nethereum.JsonRpc.Client.RpcResponseException e) when (attempt < SendAttemptsMax && !IsRevert(e, out _))
                {
                    // Another sender took this account nonce (a deployment from the same key): sign again with the next one.
                    Log.LogWarning("x402 broadcast of {Hash} refused ({Reason}); re-signing (attempt {Attempt})", hash, e.Message, attempt + 1);
                }
                catch
                {
                    _following[intent.Key] = intent; // recorded as sent: the loop finds it mined, pending, or dropped
                    throw;
                }
            }
        }
        finally { _sending.Release(); }
    }

    /// <summary>
    /// Keeps a Reserved intent whose send failed for a transient reason (the RPC unreachable): the background loop sends it
    /// again every round until it goes out (a restart would too).
    /// </summary>
    public void Defer(X402Intent intent) => _deferred[intent.Key] = intent;

    /// <summary>Waits until <paramref name="key"/>'s transaction is final (Settled or Failed) or <paramref name="timeout"/> passes (then: Sent).</summary>
    public async Task<X402State> WaitFinalAsync(NonceKey key, TimeSpan timeout, CancellationToken ct)
    {
        var waiter = _waiters.GetOrAdd(key, _ => new TaskCompletionSource<X402State>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (_store.Find(key) is { State: X402State.Settled or X402State.Failed } done) return done.State;
        try { return await waiter.Task.WaitAsync(timeout, ct); }
        catch (TimeoutException) { return X402State.Sent; }
    }

    private async Task<string> SignAsync(X402Intent i)
    {
        byte[] nonce = new byte[32];
        i.Key.Nonce.WriteTo(nonce);
        var message = new ComputeGrid.Chain.Contracts.TransferWithAuthorizationFunction
        {
            From = i.Key.From.ToChecksumString(), To = i.PayTo.ToChecksumString(), Value = new BigInteger(i.Value),
            ValidAfter = BigInteger.Parse(i.ValidAfter, CultureInfo.InvariantCulture), ValidBefore = BigInteger.Parse(i.ValidBefore, CultureInfo.InvariantCulture),
            AuthorizationNonce = nonce, Signature = i.Signature.HexToByteArray(),
        };
        return await _chain.Web3.Eth.GetContractTransactionHandler<ComputeGrid.Chain.Contracts.TransferWithAuthorizationFunction>().SignTransactionAsync(i.Key.Asset.ToChecksumString(), message);
    }

    private static string Prior(X402Intent i, string newHash) =>
        i.TxHash is null || i.TxHash == newHash ? i.PriorTxHashes : (i.PriorTxHashes + " " + i.TxHash).Trim();

    private async Task RunAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(PollInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                if (_following.IsEmpty && _deferred.IsEmpty) continue;
                try { await RoundAsync(stop); }
                catch (OperationCanceledException) when (stop.IsCancellationRequested) { throw; }
                catch (Exception e)
                {
                    // The chain or the ledger is unreachable for now: everything stays where it is, the next round retries.
                    Log.LogWarning("x402 settlement round failed, retried: {Reason}", e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
    }

    private async Task RoundAsync(CancellationToken ct)
    {
        foreach (X402Intent d in _deferred.Values)
        {
            try { await SendAsync(d, ct); }
            catch (X402SettleException) { } // refused by the chain: Failed and written off by SendAsync
            _deferred.TryRemove(d.Key, out _);
        }
        if (_following.IsEmpty) return;
        long latest = (long)(await _chain.Web3.Eth.Blocks.GetBlockNumber.SendRequestAsync()).Value;
        long? chainTime = null;
        foreach (X402Intent i in _following.Values.OrderBy(i => i.UpdatedUnixMs).Take(CheckedPerRoundMax))
        {
            ct.ThrowIfCancellationRequested();
            TransactionReceipt? mined = null;
            foreach (string hash in i.AllTxHashes)
            {
                var receipt = await _chain.Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(hash);
                if (receipt is null) continue;
                mined = receipt;
                if (receipt.Status?.Value == BigInteger.One) break;
            }
            if (mined is not null)
            {
                if (mined.Status?.Value == BigInteger.One)
                {
                    // Final once N blocks carry it (its own included); before that a reorganisation may still drop it.
                    if (latest - (long)mined.BlockNumber.Value + 1 >= _chain.Confirmations) await SettleAsync(i, mined.TransactionHash, ct);
                    continue;
                }
                // Reverted: the nonce went elsewhere, the window closed before it was mined, or the payer's funds fell short.
                bool used = await _chain.Stablecoin.AuthorizationStateAsync(i.Key.From.ToString(), i.Key.Nonce.ToString());
                if (used && await MinedByUsAsync(i)) continue; // another of our transactions was mined meanwhile: settled next round
                await FailAsync(i, used ? $"transaction {mined.TransactionHash} reverted: the nonce was used by another transaction"
                    : $"transaction {mined.TransactionHash} reverted (funds short or window closed)", ct);
                continue;
            }
            // Not mined: still waiting in the pool, or dropped?
            if (await _chain.Web3.Eth.Transactions.GetTransactionByHash.SendRequestAsync(i.TxHash) is not null) continue;
            if (await _chain.Stablecoin.AuthorizationStateAsync(i.Key.From.ToString(), i.Key.Nonce.ToString()))
            {
                // The receipts were read before the nonce's state: a block mined in between may carry one of ours.
                if (await MinedByUsAsync(i)) continue;
                await FailAsync(i, "the nonce was used by a transaction that is not ours", ct);
                continue;
            }
            chainTime ??= (long)(await _chain.Web3.Eth.Blocks.GetBlockWithTransactionsHashesByNumber.SendRequestAsync(BlockParameter.CreateLatest())).Timestamp.Value;
            if (chainTime >= i.ValidBeforeSeconds)
            {
                await FailAsync(i, "the authorization expired before its transaction was mined", ct);
                continue;
            }
            try
            {
                await _chain.Web3.Eth.Transactions.SendRawTransaction.SendRequestAsync(i.RawTx);
                Log.LogWarning("x402 transaction {Hash} was dropped; rebroadcast", i.TxHash);
            }
            catch (Nethereum.JsonRpc.Client.RpcResponseException)
            {
                // Refused: it was mined meanwhile ("nonce too low": settled next round), or its account nonce went to another
                // transaction, and then the same authorization is signed anew (the old hash kept).
                if (await MinedByUsAsync(i)) continue;
                try { await SendAsync(i, ct); }
                catch (X402SettleException) { } // already Failed and written off
            }
        }
    }

    // Whether any transaction this intent was ever sent as is mined with success (read after the nonce's state).
    private async Task<bool> MinedByUsAsync(X402Intent i)
    {
        X402Intent current = _following.TryGetValue(i.Key, out var latest) ? latest : i;
        foreach (string hash in current.AllTxHashes)
        {
            var receipt = await _chain.Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(hash);
            if (receipt?.Status?.Value == BigInteger.One) return true;
        }
        return false;
    }

    private async Task SettleAsync(X402Intent i, string txHash, CancellationToken ct)
    {
        if (i.Source == X402Source.Embeddings) await PostAsync(X402Ledger.Settled(i.Key, i.Value), ct);
        _store.MarkFinal(i.Key, X402State.Settled);
        _nonces.MarkSettled(i.Key);
        _following.TryRemove(i.Key, out _);
        Interlocked.Increment(ref _settled);
        Complete(i.Key, X402State.Settled);
        Log.LogDebug("x402 settled {Payer} nonce {Nonce} in {Hash}", i.Key.From, i.Key.Nonce, txHash);
    }

    private async Task FailAsync(X402Intent i, string reason, CancellationToken ct)
    {
        if (i.Source == X402Source.Embeddings) await PostAsync(X402Ledger.Loss(i.Key, i.Value), ct);
        _store.MarkFinal(i.Key, X402State.Failed, reason);
        _nonces.MarkSettled(i.Key); // never free again: it was served (or is gone on chain)
        _following.TryRemove(i.Key, out _);
        Interlocked.Increment(ref _failed);
        Complete(i.Key, X402State.Failed);
        Log.LogError("x402 settlement failed after service, written off to X402Losses: payer {Payer} nonce {Nonce} value {Value}: {Reason}",
            i.Key.From, i.Key.Nonce, i.Value, reason);
    }

    private void Complete(NonceKey key, X402State state)
    {
        if (_waiters.TryRemove(key, out var waiter)) waiter.TrySetResult(state);
    }

    private async Task EnsureCreditAsync(X402Intent i, CancellationToken ct)
    {
        CreateAccountResult[] a = await _ledger.CreateAccountsAsync(new[] { X402Ledger.NewPayerAccount(i.Key.From) }, ct);
        if (a[0] is not (CreateAccountResult.Ok or CreateAccountResult.Exists)) throw new InvalidOperationException($"x402 payer account refused: {a[0]}");
        await PostAsync(X402Ledger.Credit(i.Key, i.Value), ct);
    }

    private async Task PostAsync(Transfer t, CancellationToken ct)
    {
        CreateTransferResult[] r = await _ledger.CreateTransfersAsync(new[] { t }, LedgerAck.Durable, ct);
        if (r[0] is not (CreateTransferResult.Ok or CreateTransferResult.Exists))
            throw new InvalidOperationException($"the ledger refused x402 transfer {t.Id} ({(TransferCode)t.Code}): {r[0]}");
    }

    // Whether the chain refused the call itself (a revert found by the gas estimate): retrying cannot help.
    private static bool IsRevert(Exception e, out string reason)
    {
        reason = e.Message;
        if (e is Nethereum.ABI.FunctionEncoding.SmartContractRevertException revert) { reason = revert.RevertMessage ?? e.Message; return true; }
        if (e is Nethereum.JsonRpc.Client.RpcResponseException rpc && rpc.RpcError?.Message is { } m && m.Contains("revert", StringComparison.OrdinalIgnoreCase))
        {
            reason = m;
            return true;
        }
        return false;
    }

    /// <summary>Stops following (what is left resumes at the next start).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        try { await _loop; } catch (OperationCanceledException) { }
        _stopping.Dispose();
    }
}
