namespace ComputeGrid.Chain.X402;

/// <summary>
/// EIP-2612 <c>permit</c> as EIP-712 typed data (https://eips.ethereum.org/EIPS/eip-2612), over the same domain and
/// envelope as EIP-3009: an owner's signature approves a spender (the vault's <c>depositWithPermit</c>).
/// </summary>
public static class Eip2612
{
    private static readonly byte[] PermitTypeHash =
        Eip712Domain.Keccak256Of("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    /// <summary>Writes the EIP-712 digest of a permit into 32 bytes; integers are uint256 in <see cref="Bytes32"/> form.</summary>
    public static void Digest(Eip712Domain domain, EvmAddress owner, EvmAddress spender, Bytes32 value, Bytes32 nonce, Bytes32 deadline, Span<byte> digest32)
    {
        Span<byte> message = stackalloc byte[6 * 32];
        PermitTypeHash.CopyTo(message);
        owner.WriteWord(message[32..]);
        spender.WriteWord(message[64..]);
        value.WriteTo(message[96..]);
        nonce.WriteTo(message[128..]);
        deadline.WriteTo(message[160..]);
        domain.Digest(message, digest32);
    }
}
