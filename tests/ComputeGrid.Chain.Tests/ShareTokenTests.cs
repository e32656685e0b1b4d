using ComputeGrid.Chain.Contracts;
using ComputeGrid.Tokens;

namespace ComputeGrid.Chain.Tests;

/// <summary>
/// The on-chain share token against the ledger's own accumulator (ComputeGrid.Tokens.ShareAccumulator), step by step
/// through a seeded mix of revenue, transfers, mints (withdrawals from the ledger) and burns (deposits back).
/// Two ledger views are kept: <c>ledger</c> as the ledger really holds it (the on-chain supply is one bridge holder),
/// and <c>mirror</c>, where each on-chain holder is a holder of its own, which is what the contract must reproduce.
/// </summary>
[Collection(AnvilCollection.Name)]
public sealed class ShareTokenTests(AnvilFixture f)
{
    private const long NodeSupply = 1_000;
    private const ulong Issuer = 1, LedgerHolder = 2, Bridge = 99;
    private static readonly int[] OnChain = [6, 7, 8];

    private static ulong MirrorOf(int dev) => 1_000UL + (ulong)dev;

    private static ulong LedgerAccountOf(int dev) => 2_000UL + (ulong)dev;

    [ChainFact]
    public async Task On_chain_and_ledger_entitlements_add_up_to_the_node_revenue_to_the_micro_unit()
    {
        var random = new Random(1603);
        string tokenAddress = (await ChainDeployment.DeployShareTokenAsync(f.Chain, AnvilFixture.OperatorKey, ChainTestKit.Bytes32(random), "Node 77 shares", "N77", NodeSupply)).Address;
        var operatorToken = new ShareTokenClient(f.As(0), tokenAddress);
        StablecoinClient operatorUsdc = f.Stablecoin(0);
        await operatorUsdc.ApproveAsync(tokenAddress, long.MaxValue);
        long operatorBefore = await operatorUsdc.BalanceOfAsync(f.Chain.PayTo);

        var ledger = new ShareAccumulator(77, Issuer, NodeSupply);
        var mirror = new ShareAccumulator(77, Issuer, NodeSupply);
        void Both(ulong from, ulong to, ulong mirrorFrom, ulong mirrorTo, long shares)
        {
            ledger.Move(from, to, shares);
            mirror.Move(mirrorFrom, mirrorTo, shares);
        }
        Both(Issuer, LedgerHolder, Issuer, LedgerHolder, 250);
        var onChainShares = OnChain.ToDictionary(d => d, _ => 0L);
        long paid = 0;
        var done = new int[5];

        async Task Mint(int dev, long shares)
        {
            await operatorToken.MintAsync(AnvilFixture.Address(dev), shares, ChainTestKit.Bytes32(random));
            Both(Issuer, Bridge, Issuer, MirrorOf(dev), shares);
            onChainShares[dev] += shares;
        }
        await Mint(6, 100);
        await Mint(7, 33);

        for (int step = 0; step < 24; step++)
        {
            int dev = OnChain[random.Next(OnChain.Length)];
            int kind = random.Next(5);
            switch (kind)
            {
                case 0 or 1: // revenue: the node earns, on chain and in the ledger alike
                    long amount = random.Next(1, 2_000_000);
                    paid += amount;
                    await operatorToken.DistributeAsync(paid);
                    ledger.Pay(amount);
                    mirror.Pay(amount);
                    break;
                case 2 when onChainShares[dev] > 0: // a transfer between on-chain holders: the ledger sees nothing
                    int to = OnChain[random.Next(OnChain.Length)];
                    long moved = random.Next(1, (int)onChainShares[dev] + 1);
                    await new ShareTokenClient(f.As(dev), tokenAddress).TransferAsync(AnvilFixture.Address(to), moved);
                    mirror.Move(MirrorOf(dev), MirrorOf(to), moved);
                    onChainShares[dev] -= moved;
                    onChainShares[to] += moved;
                    break;
                case 3 when ledger.SharesOf(Issuer) > 0: // shares withdrawn from the ledger: minted
                    await Mint(dev, random.Next(1, (int)Math.Min(60, ledger.SharesOf(Issuer)) + 1));
                    break;
                case 4 when onChainShares[dev] > 0: // shares deposited back: burned, credited in the ledger
                    long back = random.Next(1, (int)onChainShares[dev] + 1);
                    await new ShareTokenClient(f.As(dev), tokenAddress).DepositAsync(back, ChainTestKit.Bytes32(random));
                    Both(Bridge, LedgerAccountOf(dev), MirrorOf(dev), LedgerAccountOf(dev), back);
                    onChainShares[dev] -= back;
                    break;
                default:
                    continue;
            }
            done[kind]++;
        }
        Assert.All(done, n => Assert.True(n > 0, $"the seed exercised every kind of step: {string.Join(", ", done)}"));
        paid += 999_999;
        await operatorToken.DistributeAsync(paid); // end on revenue, so every holder's remainder is in play
        ledger.Pay(999_999);
        mirror.Pay(999_999);
        ledger.AssertInvariants();
        mirror.AssertInvariants();

        long onChainSum = 0;
        foreach (int dev in OnChain)
        {
            Assert.Equal(onChainShares[dev], await operatorToken.BalanceOfAsync(AnvilFixture.Address(dev)));
            long entitlement = await operatorToken.AccumulativeDividendOfAsync(AnvilFixture.Address(dev));
            Assert.Equal(mirror.Entitlement(MirrorOf(dev)), entitlement);
            onChainSum += entitlement;
        }
        long pulled = await operatorToken.PulledAsync();
        Assert.Equal(paid, await operatorToken.RevenueAsync());
        Assert.Equal(ledger.Entitlement(Bridge), pulled);
        Assert.Equal(operatorBefore - pulled, await operatorUsdc.BalanceOfAsync(f.Chain.PayTo));
        Assert.Equal(pulled, await operatorUsdc.BalanceOfAsync(tokenAddress));
        long onChainCarry = pulled - onChainSum;
        Assert.InRange(onChainCarry, 0, OnChain.Length - 1);

        long ledgerHolders = ledger.Holders().Where(h => h != Bridge).Sum(ledger.Entitlement);
        Assert.Equal(paid, ledgerHolders + onChainSum + onChainCarry + ledger.Carry());
        Assert.True(pulled > 0 && ledgerHolders > 0, "the scenario pays both sides");
    }

    [ChainFact]
    public async Task A_holder_claims_what_it_is_owed_once_and_only_the_operator_mints_and_distributes()
    {
        var random = new Random(1604);
        string tokenAddress = (await ChainDeployment.DeployShareTokenAsync(f.Chain, AnvilFixture.OperatorKey, ChainTestKit.Bytes32(random), "Node 78 shares", "N78", 3)).Address;
        var operatorToken = new ShareTokenClient(f.As(0), tokenAddress);
        await f.Stablecoin(0).ApproveAsync(tokenAddress, long.MaxValue);
        string mintId = ChainTestKit.Bytes32(random);
        await operatorToken.MintAsync(AnvilFixture.Address(6), 2, mintId);
        await operatorToken.DistributeAsync(1_000_000); // 2 of 3 shares: 666,666.67 owed, 666,666 pulled

        Assert.Equal(666_666, await operatorToken.PulledAsync());
        var holder = new ShareTokenClient(f.As(6), tokenAddress);
        StablecoinClient usdc = f.Stablecoin(6);
        long before = await usdc.BalanceOfAsync(AnvilFixture.Address(6));
        Assert.Equal(666_666, await holder.WithdrawableDividendOfAsync(AnvilFixture.Address(6)));
        await holder.ClaimAsync();
        await holder.ClaimAsync(); // nothing left: pays nothing
        Assert.Equal(before + 666_666, await usdc.BalanceOfAsync(AnvilFixture.Address(6)));
        Assert.Equal(0, await holder.WithdrawableDividendOfAsync(AnvilFixture.Address(6)));
        Assert.Equal(666_666, await holder.AccumulativeDividendOfAsync(AnvilFixture.Address(6)));

        Assert.Equal("mint already done", (await Assert.ThrowsAsync<ChainRevertException>(() => operatorToken.MintAsync(AnvilFixture.Address(6), 1, mintId))).Reason);
        Assert.Equal("above node supply", (await Assert.ThrowsAsync<ChainRevertException>(() => operatorToken.MintAsync(AnvilFixture.Address(7), 2, ChainTestKit.Bytes32(random)))).Reason);
        Assert.Equal("only operator", (await Assert.ThrowsAsync<ChainRevertException>(() => holder.MintAsync(AnvilFixture.Address(6), 1, ChainTestKit.Bytes32(random)))).Reason);
        Assert.Equal("only operator", (await Assert.ThrowsAsync<ChainRevertException>(() => holder.DistributeAsync(1))).Reason);
    }

    [ChainFact]
    public async Task The_same_revenue_total_sent_twice_mines_both_times_and_distributes_once()
    {
        var random = new Random(1605);
        string tokenAddress = (await ChainDeployment.DeployShareTokenAsync(f.Chain, AnvilFixture.OperatorKey, ChainTestKit.Bytes32(random), "Node 79 shares", "N79", 3)).Address;
        var operatorToken = new ShareTokenClient(f.As(0), tokenAddress);
        StablecoinClient operatorUsdc = f.Stablecoin(0);
        await operatorUsdc.ApproveAsync(tokenAddress, long.MaxValue);
        await operatorToken.MintAsync(AnvilFixture.Address(6), 2, ChainTestKit.Bytes32(random));
        long before = await operatorUsdc.BalanceOfAsync(f.Chain.PayTo);

        // A resend after a crash: the same total, twice, both mined. The second changes nothing.
        ChainReceipt first = await operatorToken.DistributeAsync(1_000_000);
        ChainReceipt again = await operatorToken.DistributeAsync(1_000_000);
        Assert.NotEqual(first.TransactionHash, again.TransactionHash);
        Assert.Equal(1_000_000, await operatorToken.RevenueAsync());
        Assert.Equal(666_666, await operatorToken.PulledAsync());
        Assert.Equal(before - 666_666, await operatorUsdc.BalanceOfAsync(f.Chain.PayTo));

        // A stale total (below R) is a no-op too; a higher one pulls only the difference's share.
        await operatorToken.DistributeAsync(400_000);
        Assert.Equal(1_000_000, await operatorToken.RevenueAsync());
        await operatorToken.DistributeAsync(1_000_002); // 2 x 1,000,002 / 3 = 666,668
        Assert.Equal(1_000_002, await operatorToken.RevenueAsync());
        Assert.Equal(666_668, await operatorToken.PulledAsync());
        Assert.Equal(before - 666_668, await operatorUsdc.BalanceOfAsync(f.Chain.PayTo));
        Assert.Equal(666_668, await new ShareTokenClient(f.As(6), tokenAddress).AccumulativeDividendOfAsync(AnvilFixture.Address(6)));
    }
}
