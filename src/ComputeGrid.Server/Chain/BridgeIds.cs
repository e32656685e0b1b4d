using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Chain;

/// <summary>
/// The bridge's ids, each derived from the fact that caused it, never from a counter: a deposit's transfer from
/// (contract, transaction hash, log index), so a log read twice credits once; a withdrawal's id from (principal,
/// Idempotency-Key), so a retried request is the same withdrawal, and its transfers from that id; and the bytes32 a
/// deposit names, which is a ledger account id.
/// </summary>
public static class BridgeIds
{
    /// <summary>The ledger transfer that credits the deposit logged at (<paramref name="txHash"/>, <paramref name="logIndex"/>) by <paramref name="contract"/>.</summary>
    public static UInt128 DepositTransfer(string contract, string txHash, long logIndex) =>
        Transfer($"deposit\n{contract.ToLowerInvariant()}\n{txHash.ToLowerInvariant()}\n{logIndex.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>A withdrawal's id (bytes32 hex, the vault's <c>withdrawalId</c>): one per principal and Idempotency-Key.</summary>
    public static string Withdrawal(ulong principal, string idempotencyKey)
    {
        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes($"withdrawal\n{principal.ToString(CultureInfo.InvariantCulture)}\n{idempotencyKey}"));
        return "0x" + Convert.ToHexStringLower(hash);
    }

    /// <summary>The withdrawal's transfers: its hold, the hold's post or void, and the payment out of custody.</summary>
    public static UInt128 WithdrawalTransfer(string withdrawalId, WithdrawalStep step) => Transfer($"withdrawal\n{withdrawalId.ToLowerInvariant()}\n{(int)step}");

    /// <summary>The bytes32 a deposit names for ledger account <paramref name="account"/>: the 128-bit id, big-endian, in the low 16 bytes.</summary>
    public static string AccountToBytes32(UInt128 account)
    {
        Span<byte> b = stackalloc byte[32];
        BinaryPrimitives.WriteUInt128BigEndian(b[16..], account);
        return "0x" + Convert.ToHexStringLower(b);
    }

    /// <summary>The ledger account a deposit's bytes32 names; false when its high 16 bytes are not zero (it names no ledger account).</summary>
    public static bool TryAccountFromBytes32(string hex, out UInt128 account)
    {
        account = 0;
        string h = hex.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? hex[2..] : hex;
        if (h.Length != 64) return false;
        byte[] b;
        try { b = Convert.FromHexString(h); }
        catch (FormatException) { return false; }
        if (b.AsSpan(0, 16).ContainsAnyExcept((byte)0)) return false;
        account = BinaryPrimitives.ReadUInt128BigEndian(b.AsSpan(16));
        return account != 0;
    }

    private static UInt128 Transfer(string text)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(text), hash);
        return ChartOfAccounts.TransferId(TransferSpace.Chain, BinaryPrimitives.ReadUInt64LittleEndian(hash) & ChartOfAccounts.QualifierMax,
            BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]) | 1);
    }
}

/// <summary>The ledger transfers of one withdrawal.</summary>
public enum WithdrawalStep
{
    /// <summary>The pending transfer payer → in-flight.</summary>
    Hold = 1,
    /// <summary>The hold posted once the chain paid with its confirmations.</summary>
    Post = 2,
    /// <summary>The hold voided when the vault refused for good.</summary>
    Void = 3,
    /// <summary>In-flight → custody: the vault's stablecoin is that much less.</summary>
    Paid = 4,
}
