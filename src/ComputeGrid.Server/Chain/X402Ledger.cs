using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Chain.X402;
using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Chain;

/// <summary>
/// The ledger side of x402, all ids derived from the authorization (token, payer, nonce), so a retry, a restart or a
/// second settlement round maps to the same transfers and posts nothing twice:
/// <list type="bullet">
/// <item><b>credit</b> (id + 0): <see cref="AccountCode.X402Receivable"/> → the payer's own account
/// (<see cref="AccountCode.X402Payer"/>, keyed by its address), the signed value: the platform's claim on the authorization
/// becomes the payer's balance, which the request is then charged from exactly as a keyed request (hold, capture: node
/// revenue or share pool, platform fee).</item>
/// <item><b>settled</b> (id + 1): <see cref="AccountCode.ChainCustody"/> → <see cref="AccountCode.X402Receivable"/>, once the
/// transfer is mined with N confirmations: the claim became stablecoin in the server's chain account.</item>
/// <item><b>loss</b> (id + 2): <see cref="AccountCode.X402Losses"/> → <see cref="AccountCode.X402Receivable"/>, when the
/// settlement finally fails after service (nonce used elsewhere, expired before mined, reverted).</item>
/// <item><b>release</b> (id + 3): payer → <see cref="AccountCode.X402Receivable"/>, when the request was not served (no node):
/// the authorization is never sent.</item>
/// </list>
/// Settled and loss both close the receivable; the store's state machine lets only one of them happen.
/// </summary>
public static class X402Ledger
{
    /// <summary>The platform's claim on signed, unsettled authorizations.</summary>
    public static readonly UInt128 ReceivableAccount = ChartOfAccounts.SystemAccount(AccountCode.X402Receivable, Asset.Usd);

    /// <summary>Authorizations served but never settled.</summary>
    public static readonly UInt128 LossesAccount = ChartOfAccounts.SystemAccount(AccountCode.X402Losses, Asset.Usd);

    /// <summary>Stablecoin held in the server's chain account.</summary>
    public static readonly UInt128 CustodyAccount = ChartOfAccounts.SystemAccount(AccountCode.ChainCustody, Asset.Usd);

    /// <summary>The ledger account of an x402 payer: 112 bits of SHA-256 of its 20-byte address.</summary>
    public static UInt128 PayerAccount(EvmAddress payer)
    {
        Span<byte> address = stackalloc byte[20];
        payer.WriteTo(address);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(address, hash);
        return ChartOfAccounts.ObjectAccount(AccountCode.X402Payer, BinaryPrimitives.ReadUInt64LittleEndian(hash) & ChartOfAccounts.QualifierMax,
            BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]));
    }

    /// <summary>The first of the authorization's four transfer ids (the low two bits are left for credit, settled, loss, release).</summary>
    public static UInt128 BaseId(in NonceKey key)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes($"x402\n{key.Asset}\n{key.From}\n{key.Nonce}"), hash);
        return ChartOfAccounts.TransferId(TransferSpace.Chain, BinaryPrimitives.ReadUInt64LittleEndian(hash) & ChartOfAccounts.QualifierMax,
            BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]) & ~3UL);
    }

    /// <summary>The key the paid request's hold is named by (customer 0: an x402 payer has no principal).</summary>
    public static string RequestKey(in NonceKey key) => $"x402:{key.From}:{key.Nonce}";

    /// <summary>The payer's account, as the chart declares it (created idempotently before the credit).</summary>
    public static Account NewPayerAccount(EvmAddress payer) => ChartOfAccounts.NewAccount(AccountCode.X402Payer, PayerAccount(payer), Asset.Usd);

    /// <summary>Credits the payer with the authorization's value, from the receivable.</summary>
    public static Transfer Credit(in NonceKey key, long value) => new()
    {
        Id = BaseId(key), DebitAccountId = ReceivableAccount, CreditAccountId = PayerAccount(key.From), Amount = value,
        Asset = Asset.Usd.Code, Code = (ushort)TransferCode.X402Payment,
    };

    /// <summary>The authorization was mined with enough confirmations: custody holds it now.</summary>
    public static Transfer Settled(in NonceKey key, long value) => new()
    {
        Id = BaseId(key) + 1, DebitAccountId = CustodyAccount, CreditAccountId = ReceivableAccount, Amount = value,
        Asset = Asset.Usd.Code, Code = (ushort)TransferCode.X402Settlement,
    };

    /// <summary>The authorization will never settle: written off.</summary>
    public static Transfer Loss(in NonceKey key, long value) => new()
    {
        Id = BaseId(key) + 2, DebitAccountId = LossesAccount, CreditAccountId = ReceivableAccount, Amount = value,
        Asset = Asset.Usd.Code, Code = (ushort)TransferCode.X402Loss,
    };

    /// <summary>The request was not served: the credit goes back and the authorization is never sent.</summary>
    public static Transfer Release(in NonceKey key, long value) => new()
    {
        Id = BaseId(key) + 3, DebitAccountId = PayerAccount(key.From), CreditAccountId = ReceivableAccount, Amount = value,
        Asset = Asset.Usd.Code, Code = (ushort)TransferCode.X402Release,
    };
}
