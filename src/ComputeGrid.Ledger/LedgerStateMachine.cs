using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace ComputeGrid.Ledger;

/// <summary>
/// The ledger's deterministic state machine: double-entry accounts and transfers (TigerBeetle's model).
/// <para>
/// Invariants, asserted by <see cref="AssertInvariants"/> and by the property tests after every batch:
/// per asset, total debits (pending and posted) equal total credits; no account breaks its balance flag;
/// each account's pending debits and credits equal the sum of its open holds; every balance is ≥ 0;
/// transfer timestamps strictly increase.
/// </para>
/// <para>
/// It is single-threaded and pure: it never reads a clock, a random source or a file. The caller (the
/// sequencer in <see cref="LedgerEngine"/>) supplies each batch's timestamp, which is written to the log,
/// so replaying the log gives byte-identical state (<see cref="ComputeStateHash"/>).
/// </para>
/// <para>
/// Hot path: no allocation per event. Accounts live in one growable array of structs, transfers in
/// <see cref="TransferStore"/> chunks, ids in <see cref="IdMap"/>. A linked chain records an undo log so
/// a failed chain leaves no trace.
/// </para>
/// </summary>
public sealed partial class LedgerStateMachine : IDisposable
{
    private Account[] _accounts;
    private int[] _accountHead; // index of the newest transfer touching the account, -1 if none
    private int _accountCount;
    private readonly IdMap _accountIndex;
    private readonly IdMap _transferIndex;
    private readonly TransferStore _transfers = new();
    private PendingExpiry[] _expiry = new PendingExpiry[64];
    private int _expiryCount;

    private UndoEntry[] _undo = new UndoEntry[64];
    private int _undoCount;
    private bool _undoActive;

    /// <summary>Timestamp (Unix ns) of the newest event applied; timestamps strictly increase.</summary>
    public long LastTimestamp { get; private set; }

    /// <summary>Number of accounts.</summary>
    public int AccountCount => _accountCount;

    /// <summary>Number of transfers (including post/void transfers).</summary>
    public int TransferCount => _transfers.Count;

    /// <summary>
    /// Sees each transfer that changed posted balances once its batch committed (see <see cref="ILedgerObserver"/>);
    /// null (the default) costs one check per batch.
    /// </summary>
    public ILedgerObserver? Observer { get; set; }

    /// <summary>Creates an empty ledger sized for the given numbers of accounts and transfers.</summary>
    public LedgerStateMachine(int accountsCapacity = 1024, int transfersCapacity = 1 << 16)
    {
        _accounts = new Account[Math.Max(16, accountsCapacity)];
        _accountHead = new int[_accounts.Length];
        _accountIndex = new IdMap(new AccountIds(this), accountsCapacity);
        _transferIndex = new IdMap(_transfers, transfersCapacity);
        _transfers.Reserve(transfersCapacity);
    }

    private sealed class AccountIds(LedgerStateMachine owner) : IdSource
    {
        public override UInt128 IdAt(int index) => owner._accounts[index].Id;
    }

    /// <summary>Frees the unmanaged memory of the indexes and the transfer store.</summary>
    public void Dispose()
    {
        _accountIndex.Dispose();
        _transferIndex.Dispose();
        _transfers.Dispose();
    }

    /// <summary>
    /// The timestamp the sequencer gives the first event of a batch:
    /// the wall clock, unless that would not be strictly after the last timestamp.
    /// </summary>
    public long NextBatchTimestamp(long nowNanoseconds) => Math.Max(nowNanoseconds, checked(LastTimestamp + 1));

    // ------------------------------------------------------------------ accounts

    /// <summary>
    /// Creates a batch of accounts. Event i gets timestamp <paramref name="timestamp"/> + i. One result per event.
    /// </summary>
    // Optimized from the first call: a server must be fast before tiered compilation catches up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void CreateAccounts(ReadOnlySpan<Account> events, long timestamp, Span<CreateAccountResult> results)
    {
        BeginBatch(events.Length, timestamp, results.Length);
        int chainStart = -1;
        bool chainBroken = false;
        for (int i = 0; i < events.Length; i++)
        {
            ref readonly Account a = ref events[i];
            bool linked = (a.Flags & AccountFlags.Linked) != 0;
            if (linked && chainStart < 0) { chainStart = i; chainBroken = false; _undoActive = true; _undoCount = 0; }

            CreateAccountResult r;
            if (chainStart >= 0 && chainBroken) r = CreateAccountResult.LinkedEventFailed;
            else if (linked && i == events.Length - 1) r = CreateAccountResult.LinkedEventChainOpen;
            else r = CreateAccount(in a, timestamp + i);
            results[i] = r;

            if (chainStart >= 0)
            {
                if (r != CreateAccountResult.Ok && !chainBroken)
                {
                    chainBroken = true;
                    Rollback();
                    for (int j = chainStart; j < i; j++) results[j] = CreateAccountResult.LinkedEventFailed;
                }
                if (!linked || i == events.Length - 1) { chainStart = -1; _undoActive = false; _undoCount = 0; }
            }
        }
        EndBatch(events.Length, timestamp);
    }

    private CreateAccountResult CreateAccount(in Account a, long timestamp)
    {
        if (a.Timestamp != 0) return CreateAccountResult.TimestampMustBeZero;
        if (a.Reserved != 0) return CreateAccountResult.ReservedField;
        const AccountFlags known = AccountFlags.Linked | AccountFlags.DebitsMustNotExceedCredits | AccountFlags.CreditsMustNotExceedDebits;
        if ((a.Flags & ~known) != 0) return CreateAccountResult.ReservedFlag;
        if (a.Id == UInt128.Zero) return CreateAccountResult.IdMustNotBeZero;
        if (a.Id == UInt128.MaxValue) return CreateAccountResult.IdMustNotBeIntMax;
        if ((a.Flags & AccountFlags.DebitsMustNotExceedCredits) != 0 && (a.Flags & AccountFlags.CreditsMustNotExceedDebits) != 0)
            return CreateAccountResult.FlagsAreMutuallyExclusive;
        if (a.DebitsPending != 0) return CreateAccountResult.DebitsPendingMustBeZero;
        if (a.DebitsPosted != 0) return CreateAccountResult.DebitsPostedMustBeZero;
        if (a.CreditsPending != 0) return CreateAccountResult.CreditsPendingMustBeZero;
        if (a.CreditsPosted != 0) return CreateAccountResult.CreditsPostedMustBeZero;
        if (a.Asset == 0) return CreateAccountResult.AssetMustNotBeZero;
        if (a.Code == 0) return CreateAccountResult.CodeMustNotBeZero;

        if (_accountIndex.TryGet(a.Id, out int existing))
        {
            ref readonly Account e = ref _accounts[existing];
            if ((e.Flags & ~AccountFlags.Linked) != (a.Flags & ~AccountFlags.Linked)) return CreateAccountResult.ExistsWithDifferentFlags;
            if (e.UserData128 != a.UserData128) return CreateAccountResult.ExistsWithDifferentUserData128;
            if (e.UserData64 != a.UserData64) return CreateAccountResult.ExistsWithDifferentUserData64;
            if (e.UserData32 != a.UserData32) return CreateAccountResult.ExistsWithDifferentUserData32;
            if (e.Asset != a.Asset) return CreateAccountResult.ExistsWithDifferentAsset;
            if (e.Code != a.Code) return CreateAccountResult.ExistsWithDifferentCode;
            return CreateAccountResult.Exists;
        }

        if (_accountCount == _accounts.Length)
        {
            Array.Resize(ref _accounts, _accounts.Length * 2);
            Array.Resize(ref _accountHead, _accountHead.Length * 2);
        }
        int index = _accountCount++;
        _accounts[index] = a;
        _accounts[index].Flags = a.Flags & ~AccountFlags.Linked;
        _accounts[index].Timestamp = timestamp;
        _accountHead[index] = -1;
        _accountIndex.Add(a.Id, index);
        if (_undoActive) PushUndo(new UndoEntry { Kind = UndoKind.AccountInsert, Index = index });
        return CreateAccountResult.Ok;
    }

    // ------------------------------------------------------------------ transfers

    /// <summary>
    /// Creates a batch of transfers. Event i gets timestamp <paramref name="timestamp"/> + i. Pending transfers
    /// whose timeout has passed by <paramref name="timestamp"/> expire first. One result per event.
    /// </summary>
    // Optimized from the first call: a server must be fast before tiered compilation catches up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void CreateTransfers(ReadOnlySpan<Transfer> events, long timestamp, Span<CreateTransferResult> results)
    {
        BeginBatch(events.Length, timestamp, results.Length);
        ExpirePending(timestamp);
        // Every Ok event appends one transfer and a failed chain removes its own, so at the end of the batch the
        // transfers from here on are exactly the committed ones, in timestamp order.
        int firstStored = _transfers.Count;
        int chainStart = -1;
        bool chainBroken = false;
        for (int i = 0; i < events.Length; i++)
        {
            // Start loading the id slot of a transfer a few events ahead: the table is far larger than the caches.
            if (i + PrefetchDistance < events.Length) _transferIndex.Prefetch(events[i + PrefetchDistance].Id);
            ref readonly Transfer t = ref events[i];
            bool linked = (t.Flags & TransferFlags.Linked) != 0;
            if (linked && chainStart < 0) { chainStart = i; chainBroken = false; _undoActive = true; _undoCount = 0; }

            CreateTransferResult r;
            if (chainStart >= 0 && chainBroken) r = CreateTransferResult.LinkedEventFailed;
            else if (linked && i == events.Length - 1) r = CreateTransferResult.LinkedEventChainOpen;
            else r = CreateTransfer(in t, timestamp + i);
            results[i] = r;

            if (chainStart >= 0)
            {
                if (r != CreateTransferResult.Ok && !chainBroken)
                {
                    chainBroken = true;
                    Rollback();
                    for (int j = chainStart; j < i; j++) results[j] = CreateTransferResult.LinkedEventFailed;
                }
                if (!linked || i == events.Length - 1) { chainStart = -1; _undoActive = false; _undoCount = 0; }
            }
        }
        EndBatch(events.Length, timestamp);
        if (Observer is { } observer) NotifyPosted(observer, firstStored, _transfers.Count);
    }

    /// <summary>
    /// True for a stored transfer that changed posted balances: a plain transfer or the post of a pending one
    /// (not a pending hold, not a void).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsPosting(in Transfer stored) => (stored.Flags & (TransferFlags.Pending | TransferFlags.VoidPendingTransfer)) == 0;

    /// <summary>
    /// Hands <paramref name="observer"/> every posting transfer stored from position <paramref name="fromTransfer"/>
    /// on, oldest first: from 0, the same calls, in the same order, that an observer attached to the empty ledger
    /// received. The ledger keeps every transfer (a snapshot holds them all), so a read model rebuilt this way at
    /// start equals one kept live; from a later position, it catches up an observer detached at that count.
    /// </summary>
    public void ReplayPosted(ILedgerObserver observer, int fromTransfer = 0)
    {
        ArgumentNullException.ThrowIfNull(observer);
        ArgumentOutOfRangeException.ThrowIfNegative(fromTransfer);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(fromTransfer, _transfers.Count);
        NotifyPosted(observer, fromTransfer, _transfers.Count);
    }

    private void NotifyPosted(ILedgerObserver observer, int from, int to)
    {
        for (int i = from; i < to; i++)
        {
            ref readonly Transfer t = ref _transfers.At(i);
            if (IsPosting(in t)) observer.OnPosted(in t);
        }
    }

    /// <summary>Advances the ledger clock to <paramref name="timestamp"/>, expiring pending transfers whose timeout passed.</summary>
    public void Pulse(long timestamp)
    {
        BeginBatch(0, timestamp, 0);
        ExpirePending(timestamp);
        EndBatch(1, timestamp);
    }

    private const int PrefetchDistance = 6;

    // Optimized from the first call: a server must be fast before tiered compilation catches up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private CreateTransferResult CreateTransfer(in Transfer t, long timestamp)
    {
        if (t.Timestamp != 0) return CreateTransferResult.TimestampMustBeZero;
        if (t.Reserved != 0) return CreateTransferResult.ReservedField;
        const TransferFlags known = TransferFlags.Linked | TransferFlags.Pending | TransferFlags.PostPendingTransfer | TransferFlags.VoidPendingTransfer;
        if ((t.Flags & ~known) != 0) return CreateTransferResult.ReservedFlag;
        if (t.Id == UInt128.Zero) return CreateTransferResult.IdMustNotBeZero;
        if (t.Id == UInt128.MaxValue) return CreateTransferResult.IdMustNotBeIntMax;
        int kinds = ((t.Flags & TransferFlags.Pending) != 0 ? 1 : 0) + ((t.Flags & TransferFlags.PostPendingTransfer) != 0 ? 1 : 0)
                    + ((t.Flags & TransferFlags.VoidPendingTransfer) != 0 ? 1 : 0);
        if (kinds > 1) return CreateTransferResult.FlagsAreMutuallyExclusive;

        if ((t.Flags & (TransferFlags.PostPendingTransfer | TransferFlags.VoidPendingTransfer)) != 0)
            return PostOrVoid(in t, timestamp);

        if (t.PendingId != UInt128.Zero) return CreateTransferResult.PendingIdMustBeZero;
        if ((t.Flags & TransferFlags.Pending) == 0 && t.Timeout != 0) return CreateTransferResult.TimeoutReservedForPendingTransfer;
        if (t.Amount < 0) return CreateTransferResult.AmountMustNotBeNegative;
        if (t.DebitAccountId == UInt128.Zero) return CreateTransferResult.DebitAccountIdMustNotBeZero;
        if (t.DebitAccountId == UInt128.MaxValue) return CreateTransferResult.DebitAccountIdMustNotBeIntMax;
        if (t.CreditAccountId == UInt128.Zero) return CreateTransferResult.CreditAccountIdMustNotBeZero;
        if (t.CreditAccountId == UInt128.MaxValue) return CreateTransferResult.CreditAccountIdMustNotBeIntMax;
        if (t.DebitAccountId == t.CreditAccountId) return CreateTransferResult.AccountsMustBeDifferent;
        if (t.Amount == 0) return CreateTransferResult.AmountMustNotBeZero;
        if (t.Asset == 0) return CreateTransferResult.AssetMustNotBeZero;
        if (t.Code == 0) return CreateTransferResult.CodeMustNotBeZero;

        if (_transferIndex.TryGet(t.Id, out int existing)) return ExistsResult(in t, in _transfers.At(existing));

        if (!_accountIndex.TryGet(t.DebitAccountId, out int di)) return CreateTransferResult.DebitAccountNotFound;
        if (!_accountIndex.TryGet(t.CreditAccountId, out int ci)) return CreateTransferResult.CreditAccountNotFound;
        ref Account dr = ref _accounts[di];
        ref Account cr = ref _accounts[ci];
        if (dr.Asset != cr.Asset) return CreateTransferResult.AccountsMustHaveTheSameAsset;
        if (t.Asset != dr.Asset) return CreateTransferResult.TransferMustHaveTheSameAssetAsAccounts;

        long amount = t.Amount;
        bool pending = (t.Flags & TransferFlags.Pending) != 0;
        long expiresAt = 0;
        if (pending)
        {
            if (!TryAdd(dr.DebitsPending, amount, out _)) return CreateTransferResult.OverflowsDebitsPending;
            if (!TryAdd(cr.CreditsPending, amount, out _)) return CreateTransferResult.OverflowsCreditsPending;
        }
        else
        {
            if (!TryAdd(dr.DebitsPosted, amount, out _)) return CreateTransferResult.OverflowsDebitsPosted;
            if (!TryAdd(cr.CreditsPosted, amount, out _)) return CreateTransferResult.OverflowsCreditsPosted;
        }
        if (!TryAdd(dr.DebitsPending, dr.DebitsPosted, out long drDebits) || !TryAdd(drDebits, amount, out drDebits))
            return CreateTransferResult.OverflowsDebits;
        if (!TryAdd(cr.CreditsPending, cr.CreditsPosted, out long crCredits) || !TryAdd(crCredits, amount, out crCredits))
            return CreateTransferResult.OverflowsCredits;
        if (pending && t.Timeout != 0)
        {
            if (!TryAdd(timestamp, (long)t.Timeout * LedgerLimits.NanosecondsPerSecond, out expiresAt))
                return CreateTransferResult.OverflowsTimeout;
        }
        if ((dr.Flags & AccountFlags.DebitsMustNotExceedCredits) != 0 && drDebits > dr.CreditsPosted)
            return CreateTransferResult.ExceedsCredits;
        if ((cr.Flags & AccountFlags.CreditsMustNotExceedDebits) != 0 && crCredits > cr.DebitsPosted)
            return CreateTransferResult.ExceedsDebits;

        if (_undoActive) { SaveAccount(di); SaveAccount(ci); }
        if (pending) { dr.DebitsPending += amount; cr.CreditsPending += amount; }
        else { dr.DebitsPosted += amount; cr.CreditsPosted += amount; }

        Transfer stored = t;
        stored.Flags = t.Flags & ~TransferFlags.Linked;
        stored.Timestamp = timestamp;
        int index = Insert(in stored, pending ? PendingStatus.Pending : PendingStatus.None, di, ci);
        if (expiresAt != 0) PushExpiry(new PendingExpiry(expiresAt, timestamp, index));
        return CreateTransferResult.Ok;
    }

    // Optimized from the first call: a server must be fast before tiered compilation catches up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private CreateTransferResult PostOrVoid(in Transfer t, long timestamp)
    {
        bool post = (t.Flags & TransferFlags.PostPendingTransfer) != 0;
        if (t.PendingId == UInt128.Zero) return CreateTransferResult.PendingIdMustNotBeZero;
        if (t.PendingId == UInt128.MaxValue) return CreateTransferResult.PendingIdMustNotBeIntMax;
        if (t.PendingId == t.Id) return CreateTransferResult.PendingIdMustBeDifferent;
        if (t.Timeout != 0) return CreateTransferResult.TimeoutReservedForPendingTransfer;
        if (t.Amount < 0) return CreateTransferResult.AmountMustNotBeNegative;

        if (_transferIndex.TryGet(t.Id, out int existing)) return ExistsResult(in t, in _transfers.At(existing));

        if (!_transferIndex.TryGet(t.PendingId, out int pi)) return CreateTransferResult.PendingTransferNotFound;
        ref readonly Transfer p = ref _transfers.At(pi);
        if ((p.Flags & TransferFlags.Pending) == 0) return CreateTransferResult.PendingTransferNotPending;
        if (t.DebitAccountId != UInt128.Zero && t.DebitAccountId != p.DebitAccountId) return CreateTransferResult.PendingTransferHasDifferentDebitAccountId;
        if (t.CreditAccountId != UInt128.Zero && t.CreditAccountId != p.CreditAccountId) return CreateTransferResult.PendingTransferHasDifferentCreditAccountId;
        if (t.Asset != 0 && t.Asset != p.Asset) return CreateTransferResult.PendingTransferHasDifferentAsset;
        if (t.Code != 0 && t.Code != p.Code) return CreateTransferResult.PendingTransferHasDifferentCode;
        long amount = t.Amount == 0 ? p.Amount : t.Amount;
        if (post && amount > p.Amount) return CreateTransferResult.ExceedsPendingTransferAmount;
        if (!post && amount != p.Amount) return CreateTransferResult.PendingTransferHasDifferentAmount;
        switch (_transfers.StatusAt(pi))
        {
            case PendingStatus.Posted: return CreateTransferResult.PendingTransferAlreadyPosted;
            case PendingStatus.Voided: return CreateTransferResult.PendingTransferAlreadyVoided;
            case PendingStatus.Expired: return CreateTransferResult.PendingTransferExpired;
        }

        _accountIndex.TryGet(p.DebitAccountId, out int di);
        _accountIndex.TryGet(p.CreditAccountId, out int ci);
        ref Account dr = ref _accounts[di];
        ref Account cr = ref _accounts[ci];
        if (post)
        {
            if (!TryAdd(dr.DebitsPosted, amount, out _)) return CreateTransferResult.OverflowsDebitsPosted;
            if (!TryAdd(cr.CreditsPosted, amount, out _)) return CreateTransferResult.OverflowsCreditsPosted;
        }

        if (_undoActive)
        {
            SaveAccount(di); SaveAccount(ci);
            PushUndo(new UndoEntry { Kind = UndoKind.Status, Index = pi, OldStatus = PendingStatus.Pending });
        }
        dr.DebitsPending -= p.Amount;
        cr.CreditsPending -= p.Amount;
        if (post) { dr.DebitsPosted += amount; cr.CreditsPosted += amount; }
        SetStatus(pi, post ? PendingStatus.Posted : PendingStatus.Voided);

        Transfer stored = t;
        stored.Flags = t.Flags & ~TransferFlags.Linked;
        stored.DebitAccountId = p.DebitAccountId;
        stored.CreditAccountId = p.CreditAccountId;
        stored.Asset = p.Asset;
        stored.Code = p.Code;
        stored.Amount = amount;
        stored.Timestamp = timestamp;
        Insert(in stored, PendingStatus.None, di, ci);
        return CreateTransferResult.Ok;
    }

    /// <summary>Compares a retried transfer with the stored one; fields left zero on post/void are not compared.</summary>
    private static CreateTransferResult ExistsResult(in Transfer t, in Transfer e)
    {
        bool postOrVoid = (t.Flags & (TransferFlags.PostPendingTransfer | TransferFlags.VoidPendingTransfer)) != 0;
        if ((e.Flags & ~TransferFlags.Linked) != (t.Flags & ~TransferFlags.Linked)) return CreateTransferResult.ExistsWithDifferentFlags;
        if (e.PendingId != t.PendingId) return CreateTransferResult.ExistsWithDifferentPendingId;
        if (e.Timeout != t.Timeout) return CreateTransferResult.ExistsWithDifferentTimeout;
        if ((!postOrVoid || t.DebitAccountId != UInt128.Zero) && e.DebitAccountId != t.DebitAccountId) return CreateTransferResult.ExistsWithDifferentDebitAccountId;
        if ((!postOrVoid || t.CreditAccountId != UInt128.Zero) && e.CreditAccountId != t.CreditAccountId) return CreateTransferResult.ExistsWithDifferentCreditAccountId;
        if ((!postOrVoid || t.Amount != 0) && e.Amount != t.Amount) return CreateTransferResult.ExistsWithDifferentAmount;
        if (e.UserData128 != t.UserData128) return CreateTransferResult.ExistsWithDifferentUserData128;
        if (e.UserData64 != t.UserData64) return CreateTransferResult.ExistsWithDifferentUserData64;
        if (e.UserData32 != t.UserData32) return CreateTransferResult.ExistsWithDifferentUserData32;
        if ((!postOrVoid || t.Asset != 0) && e.Asset != t.Asset) return CreateTransferResult.ExistsWithDifferentAsset;
        if ((!postOrVoid || t.Code != 0) && e.Code != t.Code) return CreateTransferResult.ExistsWithDifferentCode;
        return CreateTransferResult.Exists;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryAdd(long a, long b, out long sum)
    {
        sum = unchecked(a + b);
        // Overflow happened iff both operands have the same sign and the sum's sign differs.
        return ((a ^ sum) & (b ^ sum)) >= 0;
    }

    private int Insert(in Transfer stored, PendingStatus status, int di, int ci)
    {
        int index = _transfers.Append(in stored, status, _accountHead[di], _accountHead[ci]);
        _accountHead[di] = index;
        _accountHead[ci] = index;
        _transferIndex.Add(stored.Id, index);
        if (_undoActive) PushUndo(new UndoEntry { Kind = UndoKind.TransferInsert, Index = index });
        return index;
    }

    // ------------------------------------------------------------------ expiry

    private void ExpirePending(long now)
    {
        while (_expiryCount > 0 && _expiry[0].ExpiresAt <= now)
        {
            PendingExpiry e = PopExpiry();
            // Entries are removed lazily: skip ones whose transfer was posted, voided or rolled back.
            if (e.Index >= _transfers.Count) continue;
            ref readonly Transfer p = ref _transfers.At(e.Index);
            if (p.Timestamp != e.Timestamp || _transfers.StatusAt(e.Index) != PendingStatus.Pending) continue;
            _accountIndex.TryGet(p.DebitAccountId, out int di);
            _accountIndex.TryGet(p.CreditAccountId, out int ci);
            _accounts[di].DebitsPending -= p.Amount;
            _accounts[ci].CreditsPending -= p.Amount;
            SetStatus(e.Index, PendingStatus.Expired);
        }
    }

    private readonly record struct PendingExpiry(long ExpiresAt, long Timestamp, int Index)
    {
        public bool Before(in PendingExpiry o) => ExpiresAt < o.ExpiresAt || (ExpiresAt == o.ExpiresAt && Timestamp < o.Timestamp);
    }

    private void PushExpiry(PendingExpiry e)
    {
        if (_expiryCount == _expiry.Length) Array.Resize(ref _expiry, _expiry.Length * 2);
        int i = _expiryCount++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!e.Before(in _expiry[parent])) break;
            _expiry[i] = _expiry[parent];
            i = parent;
        }
        _expiry[i] = e;
    }

    private PendingExpiry PopExpiry()
    {
        PendingExpiry top = _expiry[0];
        PendingExpiry last = _expiry[--_expiryCount];
        int i = 0;
        while (true)
        {
            int c = 2 * i + 1;
            if (c >= _expiryCount) break;
            if (c + 1 < _expiryCount && _expiry[c + 1].Before(in _expiry[c])) c++;
            if (!_expiry[c].Before(in last)) break;
            _expiry[i] = _expiry[c];
            i = c;
        }
        if (_expiryCount > 0) _expiry[i] = last;
        return top;
    }

    /// <summary>The earliest time (Unix ns) at which a pending transfer may expire, or null if none is open.</summary>
    public long? NextExpiry => _expiryCount > 0 ? _expiry[0].ExpiresAt : null;

    // ------------------------------------------------------------------ undo (linked chains)

    private enum UndoKind : byte { AccountBalance, AccountInsert, TransferInsert, Status }

    private struct UndoEntry
    {
        public UndoKind Kind;
        public int Index;
        public int OldHead;
        public PendingStatus OldStatus;
        public Account OldAccount;
    }

    private void PushUndo(in UndoEntry e)
    {
        if (_undoCount == _undo.Length) Array.Resize(ref _undo, _undo.Length * 2);
        _undo[_undoCount++] = e;
    }

    private void SaveAccount(int index) =>
        PushUndo(new UndoEntry { Kind = UndoKind.AccountBalance, Index = index, OldAccount = _accounts[index], OldHead = _accountHead[index] });

    private void Rollback()
    {
        for (int u = _undoCount - 1; u >= 0; u--)
        {
            ref UndoEntry e = ref _undo[u];
            switch (e.Kind)
            {
                case UndoKind.AccountBalance:
                    _accounts[e.Index] = e.OldAccount;
                    _accountHead[e.Index] = e.OldHead;
                    break;
                case UndoKind.AccountInsert:
                    _accountIndex.Remove(_accounts[e.Index].Id);
                    _accounts[e.Index] = default;
                    _accountCount--;
                    Assert(_accountCount == e.Index, "account undo out of order");
                    break;
                case UndoKind.TransferInsert:
                    _transferIndex.Remove(_transfers.At(e.Index).Id);
                    Assert(_transfers.Count - 1 == e.Index, "transfer undo out of order");
                    _transfers.RemoveLast();
                    break;
                case UndoKind.Status:
                    SetStatus(e.Index, e.OldStatus);
                    break;
            }
        }
        _undoCount = 0;
    }

    // ------------------------------------------------------------------ batches

    private void BeginBatch(int count, long timestamp, int resultsLength)
    {
        if (count > LedgerLimits.BatchEventsMax) throw new ArgumentException($"A batch holds at most {LedgerLimits.BatchEventsMax} events.");
        if (resultsLength < count) throw new ArgumentException("The results span is shorter than the batch.");
        if (timestamp <= LastTimestamp) throw new ArgumentException("Batch timestamps must strictly increase.", nameof(timestamp));
    }

    private void EndBatch(int count, long timestamp) => LastTimestamp = timestamp + Math.Max(count, 1) - 1;

    // ------------------------------------------------------------------ queries

    /// <summary>Finds an account by id.</summary>
    public bool TryGetAccount(UInt128 id, out Account account)
    {
        if (_accountIndex.TryGet(id, out int i)) { account = _accounts[i]; return true; }
        account = default;
        return false;
    }

    /// <summary>Finds a transfer by id, with its pending status.</summary>
    public bool TryGetTransfer(UInt128 id, out Transfer transfer, out PendingStatus status)
    {
        if (_transferIndex.TryGet(id, out int i)) { transfer = _transfers.At(i); status = _transfers.StatusAt(i); return true; }
        transfer = default;
        status = PendingStatus.None;
        return false;
    }

    /// <summary>The account at insertion position <paramref name="index"/>.</summary>
    public ref readonly Account AccountAt(int index) => ref _accounts[index];

    /// <summary>The transfer at insertion position <paramref name="index"/>.</summary>
    public ref readonly Transfer TransferAt(int index) => ref _transfers.At(index);

    /// <summary>The pending status of the transfer at position <paramref name="index"/>.</summary>
    public PendingStatus StatusAt(int index) => _transfers.StatusAt(index);

    /// <summary>
    /// One page of the account's transfers, newest first, with timestamp strictly below <paramref name="beforeTimestamp"/>,
    /// at most as many as <paramref name="into"/> holds; <paramref name="count"/> says how many were written.
    /// O(log N + page) whatever the length of the account's history (N: all transfers of the ledger).
    /// </summary>
    /// <remarks>
    /// <para>The cursor <paramref name="beforeTimestamp"/> must be one of:</para>
    /// <list type="bullet">
    /// <item>above the account's newest transfer (<see cref="long.MaxValue"/> for the first page): the page starts at
    ///   the newest transfer, O(1) to find;</item>
    /// <item>the timestamp of a transfer of this account, which is what a page hands out as the next cursor (its last
    ///   transfer's timestamp): a binary search on the global transfer order finds that transfer in O(log N), and the
    ///   page continues from its link for this account (<c>PrevDebit</c> or <c>PrevCredit</c>).</item>
    /// </list>
    /// <para>
    /// Any other value is refused with <see cref="HistoryResult.CursorNotAnAccountTransfer"/> and nothing is written.
    /// Why refused rather than served: the newest transfer of this account below an arbitrary timestamp cannot be found
    /// from the links without walking them (O(history) on the sequencer thread, which every ledger command waits
    /// behind), and an index that could find it (per-account arrays of positions) costs memory and amortised growth on
    /// every transfer, against the no-allocation-per-event rule. Every cursor the API hands out is exact, so paging
    /// loses nothing; "history since time T" is not offered. An account with no transfers answers an empty page for
    /// any cursor.
    /// </para>
    /// </remarks>
    public HistoryResult GetAccountTransfers(UInt128 accountId, long beforeTimestamp, Span<Transfer> into, out int count) =>
        GetAccountTransfers(accountId, beforeTimestamp, into, out count, out _);

    /// <summary>
    /// As <see cref="GetAccountTransfers(UInt128, long, Span{Transfer}, out int)"/>, and says how many stored transfers
    /// the query read (<paramref name="visited"/>: the account's newest, the binary search's probes, the cursor's
    /// transfer and the page): at most page + ⌈log2 N⌉ + 2, which the tests hold it to.
    /// </summary>
    public HistoryResult GetAccountTransfers(UInt128 accountId, long beforeTimestamp, Span<Transfer> into, out int count, out int visited)
    {
        count = 0;
        visited = 0;
        if (!_accountIndex.TryGet(accountId, out int ai)) return HistoryResult.AccountNotFound;
        int t = _accountHead[ai];
        if (t < 0) return HistoryResult.Ok;
        visited++;
        if (_transfers.At(t).Timestamp >= beforeTimestamp)
        {
            // The cursor is at or below the newest transfer, so it must name one. Positions follow timestamps, and the
            // cursor's transfer is no newer than the account's newest, so only [0, t] is searched.
            int lo = 0, hi = t;
            while (lo < hi)
            {
                int mid = lo + ((hi - lo) >> 1);
                visited++;
                if (_transfers.At(mid).Timestamp < beforeTimestamp) lo = mid + 1;
                else hi = mid;
            }
            ref readonly Transfer cursor = ref _transfers.At(lo);
            visited++;
            if (cursor.Timestamp != beforeTimestamp || (cursor.DebitAccountId != accountId && cursor.CreditAccountId != accountId))
                return HistoryResult.CursorNotAnAccountTransfer;
            t = PreviousOfAccount(lo, in cursor, accountId);
        }
        while (t >= 0 && count < into.Length)
        {
            ref readonly Transfer tr = ref _transfers.At(t);
            visited++;
            into[count++] = tr;
            t = PreviousOfAccount(t, in tr, accountId);
        }
        return HistoryResult.Ok;
    }

    /// <summary>The account's transfer before the one at <paramref name="index"/> (which touches it), or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int PreviousOfAccount(int index, in Transfer t, UInt128 accountId) =>
        t.DebitAccountId == accountId ? _transfers.MetaAt(index).PrevDebit : _transfers.MetaAt(index).PrevCredit;

    // ------------------------------------------------------------------ invariants

    /// <summary>
    /// Checks every invariant in full (O(accounts + transfers)); throws <see cref="InvalidOperationException"/>
    /// naming the first one broken. Tests call it after every batch; the engine after recovery.
    /// </summary>
    public void AssertInvariants()
    {
        var debits = new Dictionary<uint, Int128>();
        var credits = new Dictionary<uint, Int128>();
        var openDebit = new long[_accountCount];
        var openCredit = new long[_accountCount];
        for (int i = 0; i < _transfers.Count; i++)
        {
            ref readonly Transfer t = ref _transfers.At(i);
            if (i > 0) Assert(t.Timestamp > _transfers.At(i - 1).Timestamp, "transfer timestamps must strictly increase");
            if (_transfers.StatusAt(i) == PendingStatus.Pending)
            {
                _accountIndex.TryGet(t.DebitAccountId, out int di);
                _accountIndex.TryGet(t.CreditAccountId, out int ci);
                openDebit[di] = checked(openDebit[di] + t.Amount);
                openCredit[ci] = checked(openCredit[ci] + t.Amount);
            }
        }
        for (int i = 0; i < _accountCount; i++)
        {
            ref readonly Account a = ref _accounts[i];
            Assert(a.DebitsPending >= 0 && a.DebitsPosted >= 0 && a.CreditsPending >= 0 && a.CreditsPosted >= 0, "balances must not be negative");
            Assert(a.DebitsPending == openDebit[i], "debits_pending must equal the sum of open holds");
            Assert(a.CreditsPending == openCredit[i], "credits_pending must equal the sum of open holds");
            if ((a.Flags & AccountFlags.DebitsMustNotExceedCredits) != 0)
                Assert((Int128)a.DebitsPending + a.DebitsPosted <= a.CreditsPosted, "debits must not exceed credits");
            if ((a.Flags & AccountFlags.CreditsMustNotExceedDebits) != 0)
                Assert((Int128)a.CreditsPending + a.CreditsPosted <= a.DebitsPosted, "credits must not exceed debits");
            debits[a.Asset] = debits.GetValueOrDefault(a.Asset) + a.DebitsPending + a.DebitsPosted;
            credits[a.Asset] = credits.GetValueOrDefault(a.Asset) + a.CreditsPending + a.CreditsPosted;
        }
        foreach (var (asset, d) in debits)
            Assert(d == credits[asset], $"asset {asset}: total debits must equal total credits");
    }

    private static void Assert(bool condition, string what)
    {
        if (!condition) ThrowInvariant(what);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowInvariant(string what) => throw new InvalidOperationException("Ledger invariant broken: " + what);

    // ------------------------------------------------------------------ snapshots and state hash

    /// <summary>
    /// Writes the whole state in a canonical byte form: the same state always gives the same bytes. The
    /// expiry heap is not written (it is rebuilt from the pending transfers), so replay and restore agree.
    /// </summary>
    public void WriteState(Stream stream) => new StateImage(this, copy: false).WriteTo(stream);

    /// <summary>Reads a state written by <see cref="WriteState"/>; throws <see cref="InvalidDataException"/> if it is malformed.</summary>
    public static LedgerStateMachine ReadState(Stream stream)
    {
        Span<byte> header = stackalloc byte[32];
        stream.ReadExactly(header);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != SnapshotMagic) throw new InvalidDataException("Not a ledger snapshot.");
        if (BinaryPrimitives.ReadInt32LittleEndian(header[4..]) != SnapshotVersion) throw new InvalidDataException("Unknown ledger snapshot version.");
        long lastTimestamp = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        int accounts = BinaryPrimitives.ReadInt32LittleEndian(header[16..]);
        int transfers = BinaryPrimitives.ReadInt32LittleEndian(header[20..]);
        if (accounts < 0 || transfers < 0) throw new InvalidDataException("Negative counts in ledger snapshot.");
        var sm = new LedgerStateMachine(Math.Max(accounts, 16), Math.Max(transfers, 1024));
        var accountArray = new Account[accounts];
        stream.ReadExactly(MemoryMarshal.AsBytes(accountArray.AsSpan()));
        var heads = new int[accounts];
        stream.ReadExactly(MemoryMarshal.AsBytes(heads.AsSpan()));
        foreach (var a in accountArray)
        {
            sm._accounts[sm._accountCount] = a;
            if (sm._accountIndex.TryGet(a.Id, out _)) throw new InvalidDataException("Duplicate account id in ledger snapshot.");
            sm._accountIndex.Add(a.Id, sm._accountCount);
            sm._accountCount++;
        }
        heads.CopyTo(sm._accountHead, 0);
        var chunk = new Transfer[TransferStore.ChunkSize];
        var meta = new byte[TransferStore.ChunkSize * 9];
        for (int done = 0; done < transfers;)
        {
            int n = Math.Min(TransferStore.ChunkSize, transfers - done);
            stream.ReadExactly(MemoryMarshal.AsBytes(chunk.AsSpan(0, n)));
            stream.ReadExactly(meta.AsSpan(0, n * 9));
            for (int i = 0; i < n; i++)
            {
                var m = meta.AsSpan(i * 9, 9);
                var status = (PendingStatus)m[8];
                if (status > PendingStatus.Expired) throw new InvalidDataException("Bad pending status in ledger snapshot.");
                int index = sm._transfers.Append(in chunk[i], status, BinaryPrimitives.ReadInt32LittleEndian(m), BinaryPrimitives.ReadInt32LittleEndian(m[4..]));
                if (sm._transferIndex.TryGet(chunk[i].Id, out _)) throw new InvalidDataException("Duplicate transfer id in ledger snapshot.");
                sm._transferIndex.Add(chunk[i].Id, index);
                if (status == PendingStatus.Pending && chunk[i].Timeout != 0)
                    sm.PushExpiry(new PendingExpiry(chunk[i].Timestamp + (long)chunk[i].Timeout * LedgerLimits.NanosecondsPerSecond, chunk[i].Timestamp, index));
            }
            done += n;
        }
        sm.LastTimestamp = lastTimestamp;
        return sm;
    }

    /// <summary>SHA-256 of <see cref="WriteState"/>'s bytes: equal hashes mean byte-identical state.</summary>
    public byte[] ComputeStateHash()
    {
        using var hashing = new HashingStream();
        WriteState(hashing);
        return hashing.Finish();
    }

    private sealed class HashingStream : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        public byte[] Finish() => _hash.GetHashAndReset();
        public override void Write(ReadOnlySpan<byte> buffer) => _hash.AppendData(buffer);
        public override void Write(byte[] buffer, int offset, int count) => _hash.AppendData(buffer, offset, count);
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { if (disposing) _hash.Dispose(); base.Dispose(disposing); }
    }
}
