using System.Runtime.InteropServices;

namespace ComputeGrid.Ledger;

/// <summary>Account flags. Unknown bits are rejected with <see cref="CreateAccountResult.ReservedFlag"/>.</summary>
[Flags]
public enum AccountFlags : ushort
{
    None = 0,
    /// <summary>This account creation is linked with the next event of the batch: they succeed or fail together.</summary>
    Linked = 1 << 0,
    /// <summary>debits_pending + debits_posted may never exceed credits_posted (a customer balance).</summary>
    DebitsMustNotExceedCredits = 1 << 1,
    /// <summary>credits_pending + credits_posted may never exceed debits_posted.</summary>
    CreditsMustNotExceedDebits = 1 << 2,
}

/// <summary>Transfer flags. Unknown bits are rejected with <see cref="CreateTransferResult.ReservedFlag"/>.</summary>
[Flags]
public enum TransferFlags : ushort
{
    None = 0,
    /// <summary>This transfer is linked with the next event of the batch: they succeed or fail together.</summary>
    Linked = 1 << 0,
    /// <summary>Phase one of a two-phase transfer: the amount is held (pending) until posted, voided or timed out.</summary>
    Pending = 1 << 1,
    /// <summary>Posts (all or part of) the pending transfer named by <c>PendingId</c>.</summary>
    PostPendingTransfer = 1 << 2,
    /// <summary>Voids the pending transfer named by <c>PendingId</c>, releasing its hold.</summary>
    VoidPendingTransfer = 1 << 3,
}

/// <summary>What became of a pending transfer. Stored beside each transfer; <c>None</c> for ordinary transfers.</summary>
public enum PendingStatus : byte
{
    None = 0,
    Pending = 1,
    Posted = 2,
    Voided = 3,
    Expired = 4,
}

/// <summary>What an account-history query (<see cref="LedgerStateMachine.GetAccountTransfers(UInt128, long, System.Span{Transfer}, out int)"/>) found.</summary>
public enum HistoryResult : byte
{
    /// <summary>The page was written (it may be empty: no transfers below the cursor).</summary>
    Ok = 0,
    /// <summary>No account has this id.</summary>
    AccountNotFound = 1,
    /// <summary>
    /// The cursor is neither above the account's newest transfer nor the timestamp of one of its transfers. A page's
    /// cursor is the timestamp of the last transfer of the page before it; any other value is refused rather than
    /// searched for (see the method's remarks).
    /// </summary>
    CursorNotAnAccountTransfer = 2,
}

/// <summary>
/// A ledger account (96 bytes, fixed layout so it can be copied into logs and snapshots as raw bytes).
/// Balances are <c>long</c> minor units of the account's asset and never negative.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct Account : IEquatable<Account>
{
    /// <summary>Size of the struct in bytes, as written in logs and snapshots.</summary>
    public const int Size = 96;

    [FieldOffset(0)] public UInt128 Id;
    [FieldOffset(16)] public long DebitsPending;
    [FieldOffset(24)] public long DebitsPosted;
    [FieldOffset(32)] public long CreditsPending;
    [FieldOffset(40)] public long CreditsPosted;
    [FieldOffset(48)] public UInt128 UserData128;
    [FieldOffset(64)] public ulong UserData64;
    [FieldOffset(72)] public uint UserData32;
    /// <summary>Asset code (see <see cref="ComputeGrid.Core.Asset"/>): the ledger partition.</summary>
    [FieldOffset(76)] public uint Asset;
    /// <summary>Application-defined account kind (customer, node revenue, platform fee, escrow…). Never zero.</summary>
    [FieldOffset(80)] public ushort Code;
    [FieldOffset(82)] public AccountFlags Flags;
    /// <summary>Must be zero.</summary>
    [FieldOffset(84)] public uint Reserved;
    /// <summary>Assigned by the ledger (Unix ns); must be zero on create.</summary>
    [FieldOffset(88)] public long Timestamp;

    /// <summary>credits_posted − debits_posted: what a credit-normal account (a customer's balance) holds.</summary>
    public readonly long CreditBalance => CreditsPosted - DebitsPosted;

    /// <summary>Posted credits minus posted and pending debits: what is free to spend now.</summary>
    public readonly long AvailableCredit => CreditsPosted - DebitsPosted - DebitsPending;

    public readonly bool Equals(Account other) =>
        MemoryMarshal.AsBytes(new ReadOnlySpan<Account>(in this)).SequenceEqual(MemoryMarshal.AsBytes(new ReadOnlySpan<Account>(in other)));

    public override readonly bool Equals(object? obj) => obj is Account a && Equals(a);

    public override readonly int GetHashCode() => Id.GetHashCode();
}

/// <summary>
/// A transfer (128 bytes, fixed layout). The id is chosen by the client and makes the transfer idempotent.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct Transfer : IEquatable<Transfer>
{
    /// <summary>Size of the struct in bytes, as written in logs and snapshots.</summary>
    public const int Size = 128;

    [FieldOffset(0)] public UInt128 Id;
    [FieldOffset(16)] public UInt128 DebitAccountId;
    [FieldOffset(32)] public UInt128 CreditAccountId;
    /// <summary>Minor units; for post/void, 0 means "the whole pending amount".</summary>
    [FieldOffset(48)] public long Amount;
    [FieldOffset(56)] public ulong UserData64;
    /// <summary>For post/void: the id of the pending transfer. Otherwise zero.</summary>
    [FieldOffset(64)] public UInt128 PendingId;
    [FieldOffset(80)] public UInt128 UserData128;
    [FieldOffset(96)] public uint UserData32;
    /// <summary>For pending transfers: seconds until the hold expires by itself (0 = never).</summary>
    [FieldOffset(100)] public uint Timeout;
    [FieldOffset(104)] public uint Asset;
    [FieldOffset(108)] public ushort Code;
    [FieldOffset(110)] public TransferFlags Flags;
    /// <summary>Assigned by the ledger (Unix ns); must be zero on create.</summary>
    [FieldOffset(112)] public long Timestamp;
    /// <summary>Must be zero.</summary>
    [FieldOffset(120)] public ulong Reserved;

    public readonly bool Equals(Transfer other) =>
        MemoryMarshal.AsBytes(new ReadOnlySpan<Transfer>(in this)).SequenceEqual(MemoryMarshal.AsBytes(new ReadOnlySpan<Transfer>(in other)));

    public override readonly bool Equals(object? obj) => obj is Transfer t && Equals(t);

    public override readonly int GetHashCode() => Id.GetHashCode();
}

/// <summary>
/// Outcome of creating one account, ordered by precedence: when several rules are broken, the lowest
/// value after <see cref="Ok"/> is the one reported. Values are stable (they are written to clients).
/// </summary>
public enum CreateAccountResult : uint
{
    Ok = 0,
    /// <summary>Another event of the same linked chain failed, so this one was not applied.</summary>
    LinkedEventFailed = 1,
    /// <summary>The last event of the batch has the Linked flag: the chain never closes.</summary>
    LinkedEventChainOpen = 2,
    TimestampMustBeZero = 3,
    ReservedField = 4,
    ReservedFlag = 5,
    IdMustNotBeZero = 6,
    IdMustNotBeIntMax = 7,
    FlagsAreMutuallyExclusive = 8,
    DebitsPendingMustBeZero = 9,
    DebitsPostedMustBeZero = 10,
    CreditsPendingMustBeZero = 11,
    CreditsPostedMustBeZero = 12,
    AssetMustNotBeZero = 13,
    CodeMustNotBeZero = 14,
    ExistsWithDifferentFlags = 15,
    ExistsWithDifferentUserData128 = 16,
    ExistsWithDifferentUserData64 = 17,
    ExistsWithDifferentUserData32 = 18,
    ExistsWithDifferentAsset = 19,
    ExistsWithDifferentCode = 20,
    /// <summary>An identical account already exists (an idempotent retry).</summary>
    Exists = 21,
}

/// <summary>
/// Outcome of creating one transfer, ordered by precedence (TigerBeetle's order, adapted). Values are stable.
/// </summary>
public enum CreateTransferResult : uint
{
    Ok = 0,
    LinkedEventFailed = 1,
    LinkedEventChainOpen = 2,
    TimestampMustBeZero = 3,
    ReservedField = 4,
    ReservedFlag = 5,
    IdMustNotBeZero = 6,
    IdMustNotBeIntMax = 7,
    FlagsAreMutuallyExclusive = 8,
    PendingIdMustBeZero = 9,
    PendingIdMustNotBeZero = 10,
    PendingIdMustNotBeIntMax = 11,
    PendingIdMustBeDifferent = 12,
    TimeoutReservedForPendingTransfer = 13,
    AmountMustNotBeNegative = 14,
    DebitAccountIdMustNotBeZero = 15,
    DebitAccountIdMustNotBeIntMax = 16,
    CreditAccountIdMustNotBeZero = 17,
    CreditAccountIdMustNotBeIntMax = 18,
    AccountsMustBeDifferent = 19,
    AmountMustNotBeZero = 20,
    AssetMustNotBeZero = 21,
    CodeMustNotBeZero = 22,
    ExistsWithDifferentFlags = 23,
    ExistsWithDifferentPendingId = 24,
    ExistsWithDifferentTimeout = 25,
    ExistsWithDifferentDebitAccountId = 26,
    ExistsWithDifferentCreditAccountId = 27,
    ExistsWithDifferentAmount = 28,
    ExistsWithDifferentUserData128 = 29,
    ExistsWithDifferentUserData64 = 30,
    ExistsWithDifferentUserData32 = 31,
    ExistsWithDifferentAsset = 32,
    ExistsWithDifferentCode = 33,
    /// <summary>An identical transfer already exists (an idempotent retry): nothing was applied again.</summary>
    Exists = 34,
    DebitAccountNotFound = 35,
    CreditAccountNotFound = 36,
    AccountsMustHaveTheSameAsset = 37,
    TransferMustHaveTheSameAssetAsAccounts = 38,
    PendingTransferNotFound = 39,
    PendingTransferNotPending = 40,
    PendingTransferHasDifferentDebitAccountId = 41,
    PendingTransferHasDifferentCreditAccountId = 42,
    PendingTransferHasDifferentAsset = 43,
    PendingTransferHasDifferentCode = 44,
    ExceedsPendingTransferAmount = 45,
    PendingTransferHasDifferentAmount = 46,
    PendingTransferAlreadyPosted = 47,
    PendingTransferAlreadyVoided = 48,
    PendingTransferExpired = 49,
    OverflowsDebitsPending = 50,
    OverflowsCreditsPending = 51,
    OverflowsDebitsPosted = 52,
    OverflowsCreditsPosted = 53,
    OverflowsDebits = 54,
    OverflowsCredits = 55,
    OverflowsTimeout = 56,
    /// <summary>The debit account has DebitsMustNotExceedCredits and would be overdrawn.</summary>
    ExceedsCredits = 57,
    /// <summary>The credit account has CreditsMustNotExceedDebits and would exceed its debits.</summary>
    ExceedsDebits = 58,
}

/// <summary>The operations the ledger log records.</summary>
public enum LedgerOperation : byte
{
    CreateAccounts = 1,
    CreateTransfers = 2,
    /// <summary>No events: advances the ledger clock so pending transfers past their timeout expire.</summary>
    Pulse = 3,
}

/// <summary>Named limits of the ledger. Units are last in each name.</summary>
public static class LedgerLimits
{
    /// <summary>Most events (accounts or transfers) in one batch; a batch of transfers fits in 1 MiB.</summary>
    public const int BatchEventsMax = 8190;

    /// <summary>Bytes of one log record header.</summary>
    public const int RecordHeaderBytes = 64;

    /// <summary>Largest record body: a full batch of transfers.</summary>
    public const int RecordBodyBytesMax = BatchEventsMax * Transfer.Size;

    /// <summary>Most transfers returned by one history query.</summary>
    public const int HistoryLimitMax = 8190;

    /// <summary>Nanoseconds per second, for pending timeouts.</summary>
    public const long NanosecondsPerSecond = 1_000_000_000L;
}
