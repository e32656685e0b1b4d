using Nethereum.Hex.HexConvertors.Extensions;
using Nethereum.Web3;
using static ComputeGrid.Chain.Contracts.ChainCalls;

namespace ComputeGrid.Chain.Contracts;

/// <summary>
/// The calls the server makes on the test stablecoin (<c>TestUSDC</c>). Amounts are micro-USD (<c>long</c>); bytes32
/// values are 0x-prefixed hex. Transactions are sent from the account <paramref name="web3"/> was built with.
/// </summary>
public sealed class StablecoinClient(IWeb3 web3, string address)
{
    /// <summary>The contract address.</summary>
    public string Address { get; } = address;

    /// <summary>Balance of <paramref name="account"/> in micro-USD.</summary>
    public async Task<long> BalanceOfAsync(string account) =>
        ToMicro(await QueryAsync<BalanceOfFunction, System.Numerics.BigInteger>(web3, Address, new() { Account = account }).ConfigureAwait(false));

    /// <summary>Allowance from <paramref name="owner"/> to <paramref name="spender"/> in micro-USD.</summary>
    public async Task<long> AllowanceAsync(string owner, string spender) =>
        ToMicro(await QueryAsync<AllowanceFunction, System.Numerics.BigInteger>(web3, Address, new() { Owner = owner, Spender = spender }).ConfigureAwait(false));

    /// <summary>The contract's <c>DOMAIN_SEPARATOR()</c>.</summary>
    public async Task<string> DomainSeparatorAsync() =>
        Hex(await QueryAsync<DomainSeparatorFunction, byte[]>(web3, Address, new()).ConfigureAwait(false));

    /// <summary>The EIP-712 domain as published on chain: <c>name()</c>, <c>version()</c>, the chain id, this address.</summary>
    public async Task<X402.Eip712Domain> DomainAsync()
    {
        string name = await QueryAsync<NameFunction, string>(web3, Address, new()).ConfigureAwait(false);
        string version = await QueryAsync<VersionFunction, string>(web3, Address, new()).ConfigureAwait(false);
        var chainId = await web3.Eth.ChainId.SendRequestAsync().ConfigureAwait(false);
        return new X402.Eip712Domain(name, version, (long)chainId.Value, X402.EvmAddress.Parse(Address));
    }

    /// <summary>Whether <paramref name="authorizer"/>'s EIP-3009 nonce is used or canceled.</summary>
    public Task<bool> AuthorizationStateAsync(string authorizer, string nonce) =>
        QueryAsync<AuthorizationStateFunction, bool>(web3, Address, new() { Authorizer = authorizer, AuthorizationNonce = Bytes32(nonce, nameof(nonce)) });

    /// <summary><paramref name="owner"/>'s EIP-2612 nonce.</summary>
    public async Task<long> NoncesAsync(string owner) =>
        ToMicro(await QueryAsync<NoncesFunction, System.Numerics.BigInteger>(web3, Address, new() { Owner = owner }).ConfigureAwait(false));

    /// <summary>Settles an EIP-3009 authorization (the <c>bytes signature</c> overload x402 uses); anyone may send it.</summary>
    /// <exception cref="ChainRevertException">The window is closed, the nonce used, the signature wrong, or funds short.</exception>
    public Task<ChainReceipt> TransferWithAuthorizationAsync(TransferAuthorization authorization, string signature) =>
        SendAsync(web3, Address, new TransferWithAuthorizationFunction
        {
            From = authorization.From,
            To = authorization.To,
            Value = FromMicro(authorization.Value, nameof(authorization)),
            ValidAfter = authorization.ValidAfter,
            ValidBefore = authorization.ValidBefore,
            AuthorizationNonce = Bytes32(authorization.Nonce, nameof(authorization)),
            Signature = signature.HexToByteArray(),
        });

    /// <summary>The same settlement through the v,r,s overload (the other one x402's facilitator may call).</summary>
    public Task<ChainReceipt> TransferWithAuthorizationVrsAsync(TransferAuthorization authorization, string signature)
    {
        var (v, r, s) = SplitSignature(signature);
        return SendAsync(web3, Address, new TransferWithAuthorizationVrsFunction
        {
            From = authorization.From, To = authorization.To, Value = FromMicro(authorization.Value, nameof(authorization)),
            ValidAfter = authorization.ValidAfter, ValidBefore = authorization.ValidBefore,
            AuthorizationNonce = Bytes32(authorization.Nonce, nameof(authorization)), V = v, R = r, S = s,
        });
    }

    /// <summary>Settles an EIP-3009 <c>ReceiveWithAuthorization</c>; the sender must be the payee.</summary>
    public Task<ChainReceipt> ReceiveWithAuthorizationAsync(TransferAuthorization authorization, string signature) =>
        SendAsync(web3, Address, new ReceiveWithAuthorizationFunction
        {
            From = authorization.From, To = authorization.To, Value = FromMicro(authorization.Value, nameof(authorization)),
            ValidAfter = authorization.ValidAfter, ValidBefore = authorization.ValidBefore,
            AuthorizationNonce = Bytes32(authorization.Nonce, nameof(authorization)), Signature = signature.HexToByteArray(),
        });

    /// <summary>Cancels an unused authorization nonce of <paramref name="authorizer"/> with its signed <c>CancelAuthorization</c>.</summary>
    public Task<ChainReceipt> CancelAuthorizationAsync(string authorizer, string nonce, string signature)
    {
        var (v, r, s) = SplitSignature(signature);
        return SendAsync(web3, Address, new CancelAuthorizationFunction
        {
            Authorizer = authorizer, AuthorizationNonce = Bytes32(nonce, nameof(nonce)), V = v, R = r, S = s,
        });
    }

    /// <summary>Applies an EIP-2612 permit signed by its owner.</summary>
    public Task<ChainReceipt> PermitAsync(PermitAuthorization permit, string signature)
    {
        var (v, r, s) = SplitSignature(signature);
        return SendAsync(web3, Address, new PermitFunction
        {
            Owner = permit.Owner, Spender = permit.Spender, Value = FromMicro(permit.Value, nameof(permit)),
            Deadline = permit.Deadline, V = v, R = r, S = s,
        });
    }

    /// <summary>Mints test money (the deployer only).</summary>
    public Task<ChainReceipt> MintAsync(string to, long amount) =>
        SendAsync(web3, Address, new MintStablecoinFunction { To = to, Value = FromMicro(amount, nameof(amount)) });

    /// <summary>Transfers from the sender.</summary>
    public Task<ChainReceipt> TransferAsync(string to, long amount) =>
        SendAsync(web3, Address, new TransferFunction { To = to, Value = FromMicro(amount, nameof(amount)) });

    /// <summary>Approves <paramref name="spender"/> for <paramref name="amount"/>.</summary>
    public Task<ChainReceipt> ApproveAsync(string spender, long amount) =>
        SendAsync(web3, Address, new ApproveFunction { Spender = spender, Value = FromMicro(amount, nameof(amount)) });
}
