namespace ComputeGrid.Ledger;

/// <summary>
/// A plain, obviously-correct ledger: the oracle for <see cref="LedgerStateMachine"/> in seeded
/// differential tests. It favours clarity over speed everywhere: dictionaries of records, and a linked
/// chain runs against a full copy of the state that replaces the original only if every event succeeds.
/// It must never share code with the fast state machine.
/// </summary>
public sealed class ReferenceLedger
{
    private sealed class State
    {
        public List<UInt128> AccountOrder = new();
        public Dictionary<UInt128, Account> Accounts = new();
        public List<UInt128> TransferOrder = new();
        public Dictionary<UInt128, Transfer> Transfers = new();
        public Dictionary<UInt128, PendingStatus> Status = new();
        public Dictionary<UInt128, long> ExpiresAt = new();

        public State Clone() => new()
        {
            AccountOrder = new List<UInt128>(AccountOrder),
            Accounts = new Dictionary<UInt128, Account>(Accounts),
            TransferOrder = new List<UInt128>(TransferOrder),
            Transfers = new Dictionary<UInt128, Transfer>(Transfers),
            Status = new Dictionary<UInt128, PendingStatus>(Status),
            ExpiresAt = new Dictionary<UInt128, long>(ExpiresAt),
        };
    }

    private State _s = new();

    /// <summary>Timestamp of the newest event applied.</summary>
    public long LastTimestamp { get; private set; }

    /// <summary>Accounts in creation order.</summary>
    public IEnumerable<Account> Accounts => _s.AccountOrder.Select(id => _s.Accounts[id]);

    /// <summary>Transfers in creation order with their pending status.</summary>
    public IEnumerable<(Transfer Transfer, PendingStatus Status)> Transfers =>
        _s.TransferOrder.Select(id => (_s.Transfers[id], _s.Status[id]));

    /// <summary>
    /// One page of the account's history, newest first, below <paramref name="beforeTimestamp"/>, at most
    /// <paramref name="limit"/> transfers; the plain way: every transfer of the account, sorted. The same cursor rule as
    /// the fast ledger: above the newest transfer, or the timestamp of one of the account's transfers.
    /// </summary>
    public (HistoryResult Result, Transfer[] Page) GetAccountTransfers(UInt128 accountId, long beforeTimestamp, int limit)
    {
        if (!_s.Accounts.ContainsKey(accountId)) return (HistoryResult.AccountNotFound, []);
        var history = _s.Transfers.Values
            .Where(t => t.DebitAccountId == accountId || t.CreditAccountId == accountId)
            .OrderByDescending(t => t.Timestamp)
            .ToList();
        bool aboveNewest = history.Count == 0 || beforeTimestamp > history[0].Timestamp;
        bool namesOne = history.Any(t => t.Timestamp == beforeTimestamp);
        if (!aboveNewest && !namesOne) return (HistoryResult.CursorNotAnAccountTransfer, []);
        return (HistoryResult.Ok, history.Where(t => t.Timestamp < beforeTimestamp).Take(limit).ToArray());
    }

    /// <summary>Creates accounts; event i gets timestamp <paramref name="timestamp"/> + i.</summary>
    public CreateAccountResult[] CreateAccounts(IReadOnlyList<Account> events, long timestamp)
    {
        var results = RunBatch(events.Count, i => (events[i].Flags & AccountFlags.Linked) != 0,
            (s, i) => (uint)CreateAccount(s, events[i], timestamp + i));
        LastTimestamp = timestamp + Math.Max(events.Count, 1) - 1;
        return results.Select(r => (CreateAccountResult)r).ToArray();
    }

    /// <summary>Creates transfers; pending transfers due by <paramref name="timestamp"/> expire first.</summary>
    public CreateTransferResult[] CreateTransfers(IReadOnlyList<Transfer> events, long timestamp)
    {
        Expire(timestamp);
        var results = RunBatch(events.Count, i => (events[i].Flags & TransferFlags.Linked) != 0,
            (s, i) => (uint)CreateTransfer(s, events[i], timestamp + i));
        LastTimestamp = timestamp + Math.Max(events.Count, 1) - 1;
        return results.Select(r => (CreateTransferResult)r).ToArray();
    }

    /// <summary>Expires pending transfers due by <paramref name="timestamp"/>.</summary>
    public void Pulse(long timestamp)
    {
        Expire(timestamp);
        LastTimestamp = timestamp;
    }

    private const uint Ok = 0, LinkedEventFailed = 1, LinkedEventChainOpen = 2;

    /// <summary>
    /// Splits the batch into chains (a run of linked events plus the event that closes it) and applies each
    /// chain to a copy of the state, keeping the copy only if all of its events succeed.
    /// </summary>
    private uint[] RunBatch(int count, Func<int, bool> isLinked, Func<State, int, uint> apply)
    {
        var results = new uint[count];
        int start = 0;
        while (start < count)
        {
            int end = start;
            while (end < count - 1 && isLinked(end)) end++;
            bool open = isLinked(end); // only possible for the batch's last event
            if (end == start && !open)
            {
                results[start] = apply(_s, start);
                start++;
                continue;
            }
            var copy = _s.Clone();
            int failedAt = -1;
            for (int i = start; i <= end; i++)
            {
                uint r = open && i == end ? LinkedEventChainOpen : apply(copy, i);
                results[i] = r;
                if (r != Ok) { failedAt = i; break; }
            }
            if (failedAt < 0) _s = copy;
            else
            {
                for (int i = start; i <= end; i++)
                    if (i != failedAt) results[i] = LinkedEventFailed;
            }
            start = end + 1;
        }
        return results;
    }

    private static CreateAccountResult CreateAccount(State s, Account a, long timestamp)
    {
        var flags = a.Flags;
        var allowed = AccountFlags.Linked | AccountFlags.DebitsMustNotExceedCredits | AccountFlags.CreditsMustNotExceedDebits;
        if (a.Timestamp != 0) return CreateAccountResult.TimestampMustBeZero;
        if (a.Reserved != 0) return CreateAccountResult.ReservedField;
        if ((flags | allowed) != allowed) return CreateAccountResult.ReservedFlag;
        if (a.Id == 0) return CreateAccountResult.IdMustNotBeZero;
        if (a.Id == UInt128.MaxValue) return CreateAccountResult.IdMustNotBeIntMax;
        if (flags.HasFlag(AccountFlags.DebitsMustNotExceedCredits) && flags.HasFlag(AccountFlags.CreditsMustNotExceedDebits))
            return CreateAccountResult.FlagsAreMutuallyExclusive;
        if (a.DebitsPending != 0) return CreateAccountResult.DebitsPendingMustBeZero;
        if (a.DebitsPosted != 0) return CreateAccountResult.DebitsPostedMustBeZero;
        if (a.CreditsPending != 0) return CreateAccountResult.CreditsPendingMustBeZero;
        if (a.CreditsPosted != 0) return CreateAccountResult.CreditsPostedMustBeZero;
        if (a.Asset == 0) return CreateAccountResult.AssetMustNotBeZero;
        if (a.Code == 0) return CreateAccountResult.CodeMustNotBeZero;
        if (s.Accounts.TryGetValue(a.Id, out var e))
        {
            if (e.Flags != (flags & ~AccountFlags.Linked)) return CreateAccountResult.ExistsWithDifferentFlags;
            if (e.UserData128 != a.UserData128) return CreateAccountResult.ExistsWithDifferentUserData128;
            if (e.UserData64 != a.UserData64) return CreateAccountResult.ExistsWithDifferentUserData64;
            if (e.UserData32 != a.UserData32) return CreateAccountResult.ExistsWithDifferentUserData32;
            if (e.Asset != a.Asset) return CreateAccountResult.ExistsWithDifferentAsset;
            if (e.Code != a.Code) return CreateAccountResult.ExistsWithDifferentCode;
            return CreateAccountResult.Exists;
        }
        a.Flags = flags & ~AccountFlags.Linked;
        a.Timestamp = timestamp;
        s.Accounts[a.Id] = a;
        s.AccountOrder.Add(a.Id);
        return CreateAccountResult.Ok;
    }

    private static CreateTransferResult CreateTransfer(State s, Transfer t, long timestamp)
    {
        var f = t.Flags;
        var allowed = TransferFlags.Linked | TransferFlags.Pending | TransferFlags.PostPendingTransfer | TransferFlags.VoidPendingTransfer;
        bool isPending = f.HasFlag(TransferFlags.Pending), isPost = f.HasFlag(TransferFlags.PostPendingTransfer), isVoid = f.HasFlag(TransferFlags.VoidPendingTransfer);
        if (t.Timestamp != 0) return CreateTransferResult.TimestampMustBeZero;
        if (t.Reserved != 0) return CreateTransferResult.ReservedField;
        if ((f | allowed) != allowed) return CreateTransferResult.ReservedFlag;
        if (t.Id == 0) return CreateTransferResult.IdMustNotBeZero;
        if (t.Id == UInt128.MaxValue) return CreateTransferResult.IdMustNotBeIntMax;
        if ((isPending ? 1 : 0) + (isPost ? 1 : 0) + (isVoid ? 1 : 0) > 1) return CreateTransferResult.FlagsAreMutuallyExclusive;
        return isPost || isVoid ? Resolve(s, t, isPost, timestamp) : Plain(s, t, isPending, timestamp);
    }

    private static CreateTransferResult Plain(State s, Transfer t, bool isPending, long timestamp)
    {
        if (t.PendingId != 0) return CreateTransferResult.PendingIdMustBeZero;
        if (!isPending && t.Timeout != 0) return CreateTransferResult.TimeoutReservedForPendingTransfer;
        if (t.Amount < 0) return CreateTransferResult.AmountMustNotBeNegative;
        if (t.DebitAccountId == 0) return CreateTransferResult.DebitAccountIdMustNotBeZero;
        if (t.DebitAccountId == UInt128.MaxValue) return CreateTransferResult.DebitAccountIdMustNotBeIntMax;
        if (t.CreditAccountId == 0) return CreateTransferResult.CreditAccountIdMustNotBeZero;
        if (t.CreditAccountId == UInt128.MaxValue) return CreateTransferResult.CreditAccountIdMustNotBeIntMax;
        if (t.DebitAccountId == t.CreditAccountId) return CreateTransferResult.AccountsMustBeDifferent;
        if (t.Amount == 0) return CreateTransferResult.AmountMustNotBeZero;
        if (t.Asset == 0) return CreateTransferResult.AssetMustNotBeZero;
        if (t.Code == 0) return CreateTransferResult.CodeMustNotBeZero;
        if (s.Transfers.TryGetValue(t.Id, out var e)) return Exists(t, e, resolving: false);
        if (!s.Accounts.TryGetValue(t.DebitAccountId, out var dr)) return CreateTransferResult.DebitAccountNotFound;
        if (!s.Accounts.TryGetValue(t.CreditAccountId, out var cr)) return CreateTransferResult.CreditAccountNotFound;
        if (dr.Asset != cr.Asset) return CreateTransferResult.AccountsMustHaveTheSameAsset;
        if (t.Asset != dr.Asset) return CreateTransferResult.TransferMustHaveTheSameAssetAsAccounts;

        // Exact integer arithmetic in 128 bits, compared against long's range.
        Int128 amount = t.Amount, max = long.MaxValue;
        if (isPending)
        {
            if (dr.DebitsPending + amount > max) return CreateTransferResult.OverflowsDebitsPending;
            if (cr.CreditsPending + amount > max) return CreateTransferResult.OverflowsCreditsPending;
        }
        else
        {
            if (dr.DebitsPosted + amount > max) return CreateTransferResult.OverflowsDebitsPosted;
            if (cr.CreditsPosted + amount > max) return CreateTransferResult.OverflowsCreditsPosted;
        }
        Int128 drDebits = (Int128)dr.DebitsPending + dr.DebitsPosted + amount;
        Int128 crCredits = (Int128)cr.CreditsPending + cr.CreditsPosted + amount;
        if (drDebits > max) return CreateTransferResult.OverflowsDebits;
        if (crCredits > max) return CreateTransferResult.OverflowsCredits;
        Int128 expiresAt = isPending && t.Timeout != 0 ? (Int128)timestamp + (Int128)t.Timeout * 1_000_000_000 : 0;
        if (expiresAt > max) return CreateTransferResult.OverflowsTimeout;
        if (dr.Flags.HasFlag(AccountFlags.DebitsMustNotExceedCredits) && drDebits > dr.CreditsPosted) return CreateTransferResult.ExceedsCredits;
        if (cr.Flags.HasFlag(AccountFlags.CreditsMustNotExceedDebits) && crCredits > cr.DebitsPosted) return CreateTransferResult.ExceedsDebits;

        if (isPending) { dr.DebitsPending += t.Amount; cr.CreditsPending += t.Amount; }
        else { dr.DebitsPosted += t.Amount; cr.CreditsPosted += t.Amount; }
        s.Accounts[dr.Id] = dr;
        s.Accounts[cr.Id] = cr;
        t.Flags &= ~TransferFlags.Linked;
        t.Timestamp = timestamp;
        Add(s, t, isPending ? PendingStatus.Pending : PendingStatus.None);
        if (expiresAt != 0) s.ExpiresAt[t.Id] = (long)expiresAt;
        return CreateTransferResult.Ok;
    }

    private static CreateTransferResult Resolve(State s, Transfer t, bool isPost, long timestamp)
    {
        if (t.PendingId == 0) return CreateTransferResult.PendingIdMustNotBeZero;
        if (t.PendingId == UInt128.MaxValue) return CreateTransferResult.PendingIdMustNotBeIntMax;
        if (t.PendingId == t.Id) return CreateTransferResult.PendingIdMustBeDifferent;
        if (t.Timeout != 0) return CreateTransferResult.TimeoutReservedForPendingTransfer;
        if (t.Amount < 0) return CreateTransferResult.AmountMustNotBeNegative;
        if (s.Transfers.TryGetValue(t.Id, out var e)) return Exists(t, e, resolving: true);
        if (!s.Transfers.TryGetValue(t.PendingId, out var p)) return CreateTransferResult.PendingTransferNotFound;
        if (!p.Flags.HasFlag(TransferFlags.Pending)) return CreateTransferResult.PendingTransferNotPending;
        if (t.DebitAccountId != 0 && t.DebitAccountId != p.DebitAccountId) return CreateTransferResult.PendingTransferHasDifferentDebitAccountId;
        if (t.CreditAccountId != 0 && t.CreditAccountId != p.CreditAccountId) return CreateTransferResult.PendingTransferHasDifferentCreditAccountId;
        if (t.Asset != 0 && t.Asset != p.Asset) return CreateTransferResult.PendingTransferHasDifferentAsset;
        if (t.Code != 0 && t.Code != p.Code) return CreateTransferResult.PendingTransferHasDifferentCode;
        long amount = t.Amount == 0 ? p.Amount : t.Amount;
        if (isPost && amount > p.Amount) return CreateTransferResult.ExceedsPendingTransferAmount;
        if (!isPost && amount != p.Amount) return CreateTransferResult.PendingTransferHasDifferentAmount;
        var status = s.Status[p.Id];
        if (status == PendingStatus.Posted) return CreateTransferResult.PendingTransferAlreadyPosted;
        if (status == PendingStatus.Voided) return CreateTransferResult.PendingTransferAlreadyVoided;
        if (status == PendingStatus.Expired) return CreateTransferResult.PendingTransferExpired;

        var dr = s.Accounts[p.DebitAccountId];
        var cr = s.Accounts[p.CreditAccountId];
        if (isPost && (Int128)dr.DebitsPosted + amount > long.MaxValue) return CreateTransferResult.OverflowsDebitsPosted;
        if (isPost && (Int128)cr.CreditsPosted + amount > long.MaxValue) return CreateTransferResult.OverflowsCreditsPosted;
        dr.DebitsPending -= p.Amount;
        cr.CreditsPending -= p.Amount;
        if (isPost) { dr.DebitsPosted += amount; cr.CreditsPosted += amount; }
        s.Accounts[dr.Id] = dr;
        s.Accounts[cr.Id] = cr;
        s.Status[p.Id] = isPost ? PendingStatus.Posted : PendingStatus.Voided;
        s.ExpiresAt.Remove(p.Id);

        t.Flags &= ~TransferFlags.Linked;
        t.DebitAccountId = p.DebitAccountId;
        t.CreditAccountId = p.CreditAccountId;
        t.Asset = p.Asset;
        t.Code = p.Code;
        t.Amount = amount;
        t.Timestamp = timestamp;
        Add(s, t, PendingStatus.None);
        return CreateTransferResult.Ok;
    }

    private static CreateTransferResult Exists(Transfer t, Transfer e, bool resolving)
    {
        if (e.Flags != (t.Flags & ~TransferFlags.Linked)) return CreateTransferResult.ExistsWithDifferentFlags;
        if (e.PendingId != t.PendingId) return CreateTransferResult.ExistsWithDifferentPendingId;
        if (e.Timeout != t.Timeout) return CreateTransferResult.ExistsWithDifferentTimeout;
        // A post or void may leave accounts, amount, asset and code zero: "take them from the pending transfer".
        if (!(resolving && t.DebitAccountId == 0) && e.DebitAccountId != t.DebitAccountId) return CreateTransferResult.ExistsWithDifferentDebitAccountId;
        if (!(resolving && t.CreditAccountId == 0) && e.CreditAccountId != t.CreditAccountId) return CreateTransferResult.ExistsWithDifferentCreditAccountId;
        if (!(resolving && t.Amount == 0) && e.Amount != t.Amount) return CreateTransferResult.ExistsWithDifferentAmount;
        if (e.UserData128 != t.UserData128) return CreateTransferResult.ExistsWithDifferentUserData128;
        if (e.UserData64 != t.UserData64) return CreateTransferResult.ExistsWithDifferentUserData64;
        if (e.UserData32 != t.UserData32) return CreateTransferResult.ExistsWithDifferentUserData32;
        if (!(resolving && t.Asset == 0) && e.Asset != t.Asset) return CreateTransferResult.ExistsWithDifferentAsset;
        if (!(resolving && t.Code == 0) && e.Code != t.Code) return CreateTransferResult.ExistsWithDifferentCode;
        return CreateTransferResult.Exists;
    }

    private static void Add(State s, Transfer t, PendingStatus status)
    {
        s.Transfers[t.Id] = t;
        s.TransferOrder.Add(t.Id);
        s.Status[t.Id] = status;
    }

    private void Expire(long now)
    {
        foreach (var (id, expiresAt) in _s.ExpiresAt.ToList())
        {
            if (expiresAt > now || _s.Status[id] != PendingStatus.Pending) continue;
            var p = _s.Transfers[id];
            var dr = _s.Accounts[p.DebitAccountId];
            var cr = _s.Accounts[p.CreditAccountId];
            dr.DebitsPending -= p.Amount;
            cr.CreditsPending -= p.Amount;
            _s.Accounts[dr.Id] = dr;
            _s.Accounts[cr.Id] = cr;
            _s.Status[id] = PendingStatus.Expired;
            _s.ExpiresAt.Remove(id);
        }
    }
}
