using ComputeGrid.Chain.X402;

namespace ComputeGrid.Chain.Contracts;

/// <summary>
/// An EIP-3009 <c>TransferWithAuthorization</c>: <paramref name="From"/> lets anyone move <paramref name="Value"/>
/// micro-units to <paramref name="To"/> once (<paramref name="Nonce"/>), strictly between the two Unix times. The fields
/// the typed clients send; signing is the x402 code's (<see cref="Eip3009"/>, <see cref="Eip3009Signer"/>), the one
/// EIP-712 implementation, whose digest the verifier checks.
/// </summary>
/// <param name="From">The payer (the signer).</param>
/// <param name="To">The payee.</param>
/// <param name="Value">Micro-units of the token.</param>
/// <param name="ValidAfter">Valid strictly after this Unix time (seconds).</param>
/// <param name="ValidBefore">Valid strictly before this Unix time (seconds).</param>
/// <param name="Nonce">32 random bytes chosen by the payer, as 0x-prefixed hex.</param>
public sealed record TransferAuthorization(string From, string To, long Value, long ValidAfter, long ValidBefore, string Nonce)
{
    /// <summary>The same fields as the verifier parses them.</summary>
    public Eip3009Authorization Parsed() => new(EvmAddress.Parse(From), EvmAddress.Parse(To), Uint256.FromInt64(Value),
        Uint256.FromInt64(ValidAfter), Uint256.FromInt64(ValidBefore), Bytes32.TryParse(Nonce, out Bytes32 n) ? n : throw new FormatException($"not a bytes32: {Nonce}"));

    /// <summary>Signs the authorization with <paramref name="privateKey"/> (0x hex); returns the 65-byte signature as hex.</summary>
    public string Sign(Eip712Domain domain, string privateKey) => SignAs(domain, privateKey, Eip3009Kind.TransferWithAuthorization);

    /// <summary>Signs the same fields as a <c>ReceiveWithAuthorization</c> (another type hash: only the payee may submit it).</summary>
    public string SignReceive(Eip712Domain domain, string privateKey) => SignAs(domain, privateKey, Eip3009Kind.ReceiveWithAuthorization);

    /// <summary>Signs an EIP-3009 <c>CancelAuthorization</c> of this nonce by <see cref="From"/>.</summary>
    public string SignCancel(Eip712Domain domain, string privateKey)
    {
        Eip3009Authorization a = Parsed();
        Span<byte> digest = stackalloc byte[32];
        Eip3009.CancelDigest(domain, a.From, a.Nonce, digest);
        using Eip3009Signer signer = Eip3009Signer.FromHex(privateKey);
        return signer.SignDigest(digest);
    }

    private string SignAs(Eip712Domain domain, string privateKey, Eip3009Kind kind)
    {
        using Eip3009Signer signer = Eip3009Signer.FromHex(privateKey);
        return signer.Sign(domain, Parsed(), kind);
    }
}

/// <summary>An EIP-2612 <c>Permit</c>: <paramref name="Owner"/> approves <paramref name="Spender"/> for <paramref name="Value"/> by signature.</summary>
/// <param name="Owner">The token holder (the signer).</param>
/// <param name="Spender">Who may spend.</param>
/// <param name="Value">Micro-units approved.</param>
/// <param name="Nonce">The owner's current <c>nonces(owner)</c>.</param>
/// <param name="Deadline">Unix time after which the permit is refused.</param>
public sealed record PermitAuthorization(string Owner, string Spender, long Value, long Nonce, long Deadline)
{
    /// <summary>Signs the permit with <paramref name="privateKey"/> (0x hex); returns the 65-byte signature as hex.</summary>
    public string Sign(Eip712Domain domain, string privateKey)
    {
        Span<byte> digest = stackalloc byte[32];
        Eip2612.Digest(domain, EvmAddress.Parse(Owner), EvmAddress.Parse(Spender), Uint256.FromInt64(Value), Uint256.FromInt64(Nonce), Uint256.FromInt64(Deadline), digest);
        using Eip3009Signer signer = Eip3009Signer.FromHex(privateKey);
        return signer.SignDigest(digest);
    }
}
