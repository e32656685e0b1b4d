using ComputeGrid.Chain.Contracts;
using ComputeGrid.Chain.X402;

namespace ComputeGrid.Chain.Tests;

[Collection(AnvilCollection.Name)]
public sealed class StablecoinTests(AnvilFixture f)
{
    // The first contract dev key 0 deploys on a fresh Anvil lands at this address; the separator was computed with
    // viem's hashDomain (tools/chain/node_modules), independently of both the contract and Eip712Domain.
    private const string FirstDeployment = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    private const string PinnedSeparator = "0x47cbb924ae4a8f7b89f6a32d281ab2986b613fb511fad25528958103cdc18341";

    [ChainFact]
    public async Task The_EIP712_domain_on_chain_is_the_one_clients_sign_with_and_is_pinned()
    {
        StablecoinClient usdc = f.Stablecoin(0);
        Eip712Domain onChain = await usdc.DomainAsync();
        Assert.Equal((ChainInfo.TestUsdcName, ChainInfo.TestUsdcVersion, 31337L, EvmAddress.Parse(f.Chain.Stablecoin)), (onChain.Name, onChain.Version, onChain.ChainId, onChain.VerifyingContract));
        Assert.Equal(FirstDeployment, f.Chain.Stablecoin, ignoreCase: true);

        string separator = await usdc.DomainSeparatorAsync();
        Assert.Equal(PinnedSeparator, separator);
        Assert.Equal(PinnedSeparator, onChain.Separator.ToString());
        // Any field changed changes the separator: a client with a wrong name or chain id cannot sign valid payments.
        Assert.NotEqual(PinnedSeparator, new Eip712Domain("USD Coin", onChain.Version, onChain.ChainId, onChain.VerifyingContract).Separator.ToString());
        Assert.NotEqual(PinnedSeparator, new Eip712Domain(onChain.Name, onChain.Version, 8453, onChain.VerifyingContract).Separator.ToString());
    }

    [ChainFact]
    public async Task Dev_accounts_are_funded_with_1000_test_usdc_each()
    {
        // Accounts 1..3 are this class's; the others may have moved money in other tests of the collection.
        var fresh = new StablecoinClient(f.As(0), f.Chain.Stablecoin);
        long total = 0;
        for (int dev = 0; dev < 10; dev++) total += await fresh.BalanceOfAsync(AnvilFixture.Address(dev));
        Assert.True(total <= 10 * ChainDeployment.DevFundingMicro);
        Assert.Equal(ChainDeployment.DevFundingMicro, 1_000_000_000);
        string unfunded = ChainDeployment.AddressOf("0x" + new string('1', 64));
        Assert.Equal(0, await fresh.BalanceOfAsync(unfunded));
        Assert.True(await fresh.BalanceOfAsync(AnvilFixture.Address(9)) == ChainDeployment.DevFundingMicro, "dev 9 is never spent from");
    }

    [ChainFact]
    public async Task A_permit_signed_by_the_owner_sets_the_allowance_once()
    {
        StablecoinClient usdc = f.Stablecoin(2);
        string owner = AnvilFixture.Address(1), spender = AnvilFixture.Address(2);
        Eip712Domain domain = await usdc.DomainAsync();
        long nonce = await usdc.NoncesAsync(owner);
        var permit = new PermitAuthorization(owner, spender, 12_345_678, nonce, await f.LatestTimestampAsync() + 3600);
        string signature = permit.Sign(domain, AnvilFixture.Key(1));

        await usdc.PermitAsync(permit, signature); // sent by the spender: the owner pays no gas
        Assert.Equal(12_345_678, await usdc.AllowanceAsync(owner, spender));
        Assert.Equal(nonce + 1, await usdc.NoncesAsync(owner));

        // The nonce moved on, so the same signature no longer recovers the owner.
        var replay = await Assert.ThrowsAsync<ChainRevertException>(() => usdc.PermitAsync(permit, signature));
        Assert.Equal("invalid signature", replay.Reason);
        var expired = permit with { Nonce = nonce + 1, Deadline = await f.LatestTimestampAsync() - 1 };
        var late = await Assert.ThrowsAsync<ChainRevertException>(() => usdc.PermitAsync(expired, expired.Sign(domain, AnvilFixture.Key(1))));
        Assert.Equal("permit expired", late.Reason);
    }

    [ChainFact]
    public async Task TransferWithAuthorization_moves_funds_once_and_refuses_reuse_expiry_and_a_wrong_signer()
    {
        var random = new Random(16);
        StablecoinClient relayer = f.Stablecoin(3); // anyone may submit: here a third account pays the gas
        string payer = AnvilFixture.Address(1), payee = AnvilFixture.Address(2);
        Eip712Domain domain = await relayer.DomainAsync();
        long now = await f.LatestTimestampAsync();
        var auth = new TransferAuthorization(payer, payee, 1_250_000, now - 60, now + 600, ChainTestKit.Bytes32(random));
        string signature = auth.Sign(domain, AnvilFixture.Key(1));
        long payerBefore = await relayer.BalanceOfAsync(payer), payeeBefore = await relayer.BalanceOfAsync(payee);
        Assert.False(await relayer.AuthorizationStateAsync(payer, auth.Nonce));

        ChainReceipt receipt = await relayer.TransferWithAuthorizationAsync(auth, signature);
        Assert.True(receipt.GasUsed > 21_000);
        Assert.Equal(payerBefore - 1_250_000, await relayer.BalanceOfAsync(payer));
        Assert.Equal(payeeBefore + 1_250_000, await relayer.BalanceOfAsync(payee));
        Assert.True(await relayer.AuthorizationStateAsync(payer, auth.Nonce));

        var reused = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.TransferWithAuthorizationAsync(auth, signature));
        Assert.Equal("authorization used or canceled", reused.Reason);

        var stale = auth with { ValidBefore = now - 1, Nonce = ChainTestKit.Bytes32(random) };
        var expired = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.TransferWithAuthorizationAsync(stale, stale.Sign(domain, AnvilFixture.Key(1))));
        Assert.Equal("authorization expired", expired.Reason);

        var early = auth with { ValidAfter = now + 3600, ValidBefore = now + 7200, Nonce = ChainTestKit.Bytes32(random) };
        var notYet = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.TransferWithAuthorizationAsync(early, early.Sign(domain, AnvilFixture.Key(1))));
        Assert.Equal("authorization not yet valid", notYet.Reason);

        var forged = auth with { Nonce = ChainTestKit.Bytes32(random) };
        var wrongSigner = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.TransferWithAuthorizationAsync(forged, forged.Sign(domain, AnvilFixture.Key(3))));
        Assert.Equal("invalid signature", wrongSigner.Reason);

        // Signed for another domain (another chain id): the signature recovers someone else.
        var elsewhere = auth with { Nonce = ChainTestKit.Bytes32(random) };
        var wrongDomain = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.TransferWithAuthorizationAsync(elsewhere, elsewhere.Sign(new Eip712Domain(domain.Name, domain.Version, 1, domain.VerifyingContract), AnvilFixture.Key(1))));
        Assert.Equal("invalid signature", wrongDomain.Reason);

        Assert.Equal(payerBefore - 1_250_000, await relayer.BalanceOfAsync(payer));
    }
}

[Collection(AnvilCollection.Name)]
public sealed class AuthorizationOverloadTests(AnvilFixture f)
{
    [ChainFact]
    public async Task The_vrs_overload_receive_by_the_payee_only_and_cancel_all_honour_one_nonce_space()
    {
        var random = new Random(3009);
        string payer = AnvilFixture.Address(1), payee = AnvilFixture.Address(2);
        StablecoinClient relayer = f.Stablecoin(3), payeeClient = f.Stablecoin(2), payerClient = f.Stablecoin(1);
        Eip712Domain domain = await relayer.DomainAsync();
        long now = await f.LatestTimestampAsync();
        long payeeBefore = await relayer.BalanceOfAsync(payee);

        var vrs = new TransferAuthorization(payer, payee, 10, now - 1, now + 600, ChainTestKit.Bytes32(random));
        await relayer.TransferWithAuthorizationVrsAsync(vrs, vrs.Sign(domain, AnvilFixture.Key(1)));
        Assert.True(await relayer.AuthorizationStateAsync(payer, vrs.Nonce));

        var receive = vrs with { Value = 20, Nonce = ChainTestKit.Bytes32(random) };
        string receiveSignature = receive.SignReceive(domain, AnvilFixture.Key(1));
        var byRelayer = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.ReceiveWithAuthorizationAsync(receive, receiveSignature));
        Assert.Equal("caller must be the payee", byRelayer.Reason);
        // A receive signature is not a transfer signature: another type hash, so it recovers someone else.
        var asTransfer = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.TransferWithAuthorizationAsync(receive, receiveSignature));
        Assert.Equal("invalid signature", asTransfer.Reason);
        await payeeClient.ReceiveWithAuthorizationAsync(receive, receiveSignature);

        var canceled = vrs with { Value = 40, Nonce = ChainTestKit.Bytes32(random) };
        string transferSignature = canceled.Sign(domain, AnvilFixture.Key(1));
        var wrongCanceller = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.CancelAuthorizationAsync(payer, canceled.Nonce, canceled.SignCancel(domain, AnvilFixture.Key(3))));
        Assert.Equal("invalid signature", wrongCanceller.Reason);
        await payerClient.CancelAuthorizationAsync(payer, canceled.Nonce, canceled.SignCancel(domain, AnvilFixture.Key(1)));
        Assert.True(await relayer.AuthorizationStateAsync(payer, canceled.Nonce));
        var afterCancel = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.TransferWithAuthorizationAsync(canceled, transferSignature));
        Assert.Equal("authorization used or canceled", afterCancel.Reason);
        var usedTwice = await Assert.ThrowsAsync<ChainRevertException>(() => relayer.CancelAuthorizationAsync(payer, vrs.Nonce, vrs.SignCancel(domain, AnvilFixture.Key(1))));
        Assert.Equal("authorization used or canceled", usedTwice.Reason);

        Assert.Equal(payeeBefore + 30, await relayer.BalanceOfAsync(payee));
    }
}
