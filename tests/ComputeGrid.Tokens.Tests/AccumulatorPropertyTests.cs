using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Tokens.Tests;

/// <summary>
/// The accumulator against the naive per-holder loop, on seeded random sequences of revenue, share transfers,
/// pledges, releases, liquidations (direct, and through the escrow in a linked chain after a pending hold), voided
/// holds, claims, auto-claims and linked chains that fail. Every step is real transfers through a real
/// <see cref="LedgerStateMachine"/> with the projection attached; the naive book is driven by the test's own model
/// of each step, so the projection's reading of the ledger is checked too. After every step: identical shares,
/// entitlements, claims and owed per holder to the micro-unit; Σ entitlements + carry == R with the carry exactly
/// the holders' remainders over the supply; the pool's balance == R − Σ claims; the ledger's invariants (debits ==
/// credits per asset). A failure names its seed and step.
/// </summary>
public class AccumulatorPropertyTests
{
    private const ulong NodeA = 7001, NodeB = 7002;
    private static readonly ulong[] Nodes = [NodeA, NodeB];
    private const int Principals = 12;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(20261206)]
    public void Accumulator_matches_the_naive_loop_after_every_step_of_a_random_ledger_history(int seed)
    {
        var run = new Run(seed);
        for (int step = 0; step < 1500; step++)
        {
            string what = run.Step();
            try { run.Check(); }
            catch (Exception e) { throw new Xunit.Sdk.XunitException($"seed {seed}, step {step} ({what}): {e.Message}"); }
        }
        Assert.True(run.Counts["pay"] > 300 && run.Counts["claim"] > 50 && run.Counts["liquidate"] > 20 && run.Counts["failed-chain"] > 20
            && run.Counts["escrow-fill"] > 20 && run.Counts["void"] > 10, string.Join(", ", run.Counts));
        run.CheckRebuild();
        run.World.Dispose();
    }

    private sealed class Run
    {
        public readonly TokenWorld World = new();
        private readonly NaiveShareBook _naive = new();
        private readonly Random _rng;
        private readonly List<(ulong Node, ulong Seller, ulong Buyer, long Shares, UInt128 HoldId)> _holds = new();
        public readonly Dictionary<string, int> Counts = new()
        {
            ["pay"] = 0, ["transfer"] = 0, ["pledge"] = 0, ["unpledge"] = 0, ["liquidate"] = 0, ["claim"] = 0, ["auto-claim"] = 0,
            ["failed-chain"] = 0, ["hold"] = 0, ["escrow-fill"] = 0, ["void"] = 0,
        };

        public Run(int seed)
        {
            _rng = new Random(seed);
            // Supplies that do not divide revenue evenly, so remainders and the carry are exercised.
            long[] supplies = [1_000_003, 997];
            for (int i = 0; i < Nodes.Length; i++)
            {
                ulong issuer = (ulong)(i + 1);
                World.IssueNode(Nodes[i], issuer, supplies[i]);
                _naive.Issue(Nodes[i], issuer, supplies[i]);
            }
        }

        private ulong Node() => Nodes[_rng.Next(Nodes.Length)];

        private ulong Principal() => (ulong)_rng.Next(1, Principals + 1);

        private long Some(long max) => max <= 1 ? 1 : 1 + (long)(_rng.NextDouble() * _rng.NextDouble() * (max - 1));

        private long Amount() => _rng.Next(4) switch
        {
            0 => _rng.Next(1, 10),
            1 => _rng.Next(1, 1_000_000),
            2 => _rng.NextInt64(1, 5_000_000_000),
            _ => _rng.Next(1, 100_000),
        };

        /// <summary>A holder of <paramref name="node"/> with free (or pledged) shares, if any.</summary>
        private bool TryPick(ulong node, bool pledged, out ulong holder, out long shares)
        {
            ulong first = Principal();
            for (ulong k = 0; k < Principals; k++)
            {
                holder = (first + k - 1) % Principals + 1;
                shares = World.Free(pledged ? ChartOfAccounts.SharePledge(holder, node) : ChartOfAccounts.ShareHolding(holder, node));
                if (shares > 0) return true;
            }
            holder = 0;
            shares = 0;
            return false;
        }

        public string Step()
        {
            ulong node = Node();
            int roll = _rng.Next(100);
            if (roll < 30) return Pay(node);
            if (roll < 42) return Transfer(node);
            if (roll < 50) return Pledge(node);
            if (roll < 56) return Unpledge(node);
            if (roll < 62) return Liquidate(node);
            if (roll < 74) return Claim(node);
            if (roll < 78) return AutoClaim(node);
            if (roll < 84) return FailedChain(node);
            if (roll < 90) return Hold(node);
            if (roll < 96) return Fill();
            return Void();
        }

        private string Pay(ulong node)
        {
            // One to four payments in one batch, sometimes to both nodes.
            int n = _rng.Next(1, 5);
            var batch = new Transfer[n];
            for (int i = 0; i < n; i++)
            {
                ulong to = i == 0 ? node : Node();
                long amount = Amount();
                batch[i] = TokenTransfers.Revenue(World.NextKey(), TokenWorld.Payer(to), to, amount);
                _naive.Pay(to, amount);
            }
            World.Ok(batch);
            Counts["pay"]++;
            return $"pay x{n}";
        }

        private string Transfer(ulong node)
        {
            if (!TryPick(node, pledged: false, out ulong from, out long held)) return Pay(node);
            ulong to = Principal();
            if (to == from) to = to % Principals + 1;
            World.Holder(to, node);
            long shares = _rng.Next(3) == 0 ? held : Some(held); // sometimes everything: a holder leaves
            World.Ok(TokenTransfers.ShareTransfer(World.NextKey(), node, from, to, shares));
            _naive.Move(node, from, to, shares);
            Counts["transfer"]++;
            return $"transfer {shares} of {node} {from}->{to}";
        }

        private string Pledge(ulong node)
        {
            if (!TryPick(node, pledged: false, out ulong holder, out long held)) return Pay(node);
            long shares = Some(held);
            World.Ok(TokenTransfers.Pledge(World.NextKey(), node, holder, shares));
            _naive.Move(node, holder, holder, shares);
            Counts["pledge"]++;
            return $"pledge {shares} of {node} by {holder}";
        }

        private string Unpledge(ulong node)
        {
            if (!TryPick(node, pledged: true, out ulong holder, out long pledged)) return Pledge(node);
            long shares = Some(pledged);
            World.Ok(TokenTransfers.Unpledge(World.NextKey(), node, holder, shares));
            Counts["unpledge"]++;
            return $"unpledge {shares} of {node} by {holder}";
        }

        private string Liquidate(ulong node)
        {
            if (!TryPick(node, pledged: true, out ulong borrower, out long pledged)) return Pledge(node);
            ulong buyer = Principal();
            if (buyer == borrower) buyer = buyer % Principals + 1;
            World.Holder(buyer, node);
            long shares = _rng.Next(2) == 0 ? pledged : Some(pledged);
            if (_rng.Next(2) == 0)
            {
                World.Ok(TokenTransfers.Liquidation(World.NextKey(), node, borrower, buyer, shares));
            }
            else
            {
                // Through the escrow, as a sale on the book would: pledge → escrow → buyer, one linked chain.
                ulong key = World.NextKey();
                var toEscrow = Raw(TokenTransfers.Id(TokenOperation.Liquidation, key, 1), ChartOfAccounts.SharePledge(borrower, node), TokenWorld.Escrow(node), shares, node, TransferFlags.Linked);
                var toBuyer = Raw(TokenTransfers.Id(TokenOperation.Liquidation, key, 2), TokenWorld.Escrow(node), ChartOfAccounts.ShareHolding(buyer, node), shares, node, TransferFlags.None);
                World.Ok(toEscrow, toBuyer);
            }
            _naive.Move(node, borrower, buyer, shares);
            Counts["liquidate"]++;
            return $"liquidate {shares} of {node} {borrower}->{buyer}";
        }

        private string Claim(ulong node)
        {
            ulong holder = Principal();
            long owed = _naive.IsIssued(node) ? _naive.Owed(node, holder) : 0;
            if (owed == 0) return Pay(node);
            long requested = _rng.Next(3) == 0 ? 0 : _rng.NextInt64(0, owed + 1);
            var (decision, amount) = ClaimPolicy.Request(owed, requested);
            if (decision != ClaimDecision.Claim) return "claim of nothing";
            World.Holder(holder, node);
            World.Ok(TokenTransfers.Claim(World.NextKey(), node, holder, amount));
            _naive.Claim(node, holder, amount);
            Counts["claim"]++;
            return $"claim {amount} of {owed} from {node} by {holder}";
        }

        private string AutoClaim(ulong node)
        {
            // Every holder with auto-claim at a threshold: one batch claims for all who reached it.
            long threshold = _rng.NextInt64(1, 2_000_000);
            var batch = new List<Transfer>();
            foreach (ulong holder in _naive.Holders(node))
            {
                if (holder == 0) continue;
                long amount = ClaimPolicy.AutoClaim(_naive.Owed(node, holder), threshold);
                if (amount == 0) continue;
                batch.Add(TokenTransfers.Claim(World.NextKey(), node, holder, amount));
                _naive.Claim(node, holder, amount);
            }
            if (batch.Count > 0) World.Ok([.. batch]);
            Counts["auto-claim"]++;
            return $"auto-claim at {threshold}: {batch.Count} claims";
        }

        private string FailedChain(ulong node)
        {
            // A chain that moves shares, pays revenue and claims, then fails on its last transfer: nothing is seen.
            if (!TryPick(node, pledged: false, out ulong from, out long held)) return Pay(node);
            ulong to = from % Principals + 1;
            World.Holder(to, node);
            var before = Fingerprint();
            ulong k = World.NextKey();
            Transfer move = TokenTransfers.ShareTransfer(k, node, from, to, Some(held));
            move.Flags = TransferFlags.Linked;
            Transfer pay = TokenTransfers.Revenue(k, TokenWorld.Payer(node), node, Amount());
            pay.Flags = TransferFlags.Linked;
            Transfer overdraw = TokenTransfers.ShareTransfer(k + 1_000_000_000, node, to, from, checked(World.Holding(to, node) + held + 1));
            var results = World.Submit(move, pay, overdraw);
            Assert.Equal([CreateTransferResult.LinkedEventFailed, CreateTransferResult.LinkedEventFailed, CreateTransferResult.ExceedsCredits], results);
            Assert.Equal(before, Fingerprint());
            Counts["failed-chain"]++;
            return "failed chain";
        }

        private string Hold(ulong node)
        {
            // A sell order's hold: pending, so the seller keeps earning on the shares until the fill posts it.
            if (!TryPick(node, pledged: false, out ulong seller, out long held)) return Pay(node);
            long shares = Some(held);
            ulong buyer = Principal();
            if (buyer == seller) buyer = buyer % Principals + 1;
            World.Holder(buyer, node);
            UInt128 id = TokenTransfers.Id(TokenOperation.Transfer, World.NextKey(), 9);
            var hold = Raw(id, ChartOfAccounts.ShareHolding(seller, node), TokenWorld.Escrow(node), shares, node, TransferFlags.Pending);
            World.Ok(hold);
            _holds.Add((node, seller, buyer, shares, id));
            Counts["hold"]++;
            return $"hold {shares} of {node} by {seller}";
        }

        private string Fill()
        {
            if (_holds.Count == 0) return Pay(Node());
            int i = _rng.Next(_holds.Count);
            var (node, seller, buyer, shares, holdId) = _holds[i];
            _holds.RemoveAt(i);
            ulong key = World.NextKey();
            // The post (all, or part of the hold) and the escrow's delivery to the buyer, linked.
            long filled = _rng.Next(2) == 0 ? shares : Some(shares);
            var post = new Transfer { Id = TokenTransfers.Id(TokenOperation.Transfer, key, 10), PendingId = holdId, Amount = filled, Flags = TransferFlags.PostPendingTransfer | TransferFlags.Linked };
            var deliver = Raw(TokenTransfers.Id(TokenOperation.Transfer, key, 11), TokenWorld.Escrow(node), ChartOfAccounts.ShareHolding(buyer, node), filled, node, TransferFlags.None);
            World.Ok(post, deliver);
            _naive.Move(node, seller, buyer, filled);
            Counts["escrow-fill"]++;
            return $"fill {filled} of {shares} of {node} {seller}->{buyer}";
        }

        private string Void()
        {
            if (_holds.Count == 0) return Pay(Node());
            var (_, _, _, _, holdId) = _holds[^1];
            _holds.RemoveAt(_holds.Count - 1);
            var before = Fingerprint();
            World.Ok(new Transfer { Id = TokenTransfers.Id(TokenOperation.Transfer, World.NextKey(), 12), PendingId = holdId, Flags = TransferFlags.VoidPendingTransfer });
            Assert.Equal(before, Fingerprint());
            Counts["void"]++;
            return "void";
        }

        private static Transfer Raw(UInt128 id, UInt128 debit, UInt128 credit, long shares, ulong node, TransferFlags flags) => new()
        {
            Id = id, DebitAccountId = debit, CreditAccountId = credit, Amount = shares, Asset = Asset.NodeShares(node).Code,
            Code = (ushort)TransferCode.ShareTrade, Flags = flags,
        };

        /// <summary>Every holder's accumulator state and every node's R and claims: equal fingerprints, equal books.</summary>
        private string Fingerprint() => BookFingerprint.Of(World.Registry);

        public void Check()
        {
            foreach (ulong node in Nodes)
            {
                Assert.True(World.Registry.TryGet(node, out ShareAccumulator acc));
                Assert.Equal(_naive.Revenue(node), acc.Revenue);
                var holders = new HashSet<ulong>(_naive.Holders(node));
                holders.UnionWith(acc.Holders());
                long entitled = 0, claimed = 0;
                foreach (ulong h in holders)
                {
                    Assert.Equal(_naive.Shares(node, h), acc.SharesOf(h));
                    Assert.Equal(_naive.Entitlement(node, h), acc.Entitlement(h));
                    Assert.Equal(_naive.Claimed(node, h), acc.ClaimedBy(h));
                    Assert.Equal(_naive.Owed(node, h), acc.Owed(h));
                    long onLedger = h == 0 ? World.Balance(TokenWorld.Escrow(node)) : World.Holding(h, node) + World.Pledged(h, node);
                    Assert.Equal(onLedger, acc.SharesOf(h));
                    entitled += acc.Entitlement(h);
                    claimed += acc.ClaimedBy(h);
                }
                Assert.Equal(acc.Revenue, entitled + acc.Carry());
                Assert.Equal(_naive.Carry(node), acc.Carry());
                Assert.Equal(acc.ClaimedTotal, claimed);
                Assert.Equal(acc.Revenue - acc.ClaimedTotal, World.Balance(ChartOfAccounts.SharePool(node)));
                Assert.Equal(acc.Revenue, TokenWorld.PayerFunding - World.Balance(TokenWorld.Payer(node)));
                acc.AssertInvariants();
            }
            World.Ledger.AssertInvariants();
        }

        /// <summary>The book rebuilt from the ledger alone, live and from a snapshot of it, equals the live one.</summary>
        public void CheckRebuild()
        {
            string live = Fingerprint();
            var rebuilt = new ShareRegistry();
            World.Ledger.ReplayPosted(new ShareLedgerProjection(rebuilt));
            Assert.Equal(live, BookFingerprint.Of(rebuilt));

            using var stream = new MemoryStream();
            World.Ledger.WriteState(stream);
            stream.Position = 0;
            using var restored = LedgerStateMachine.ReadState(stream);
            var fromSnapshot = new ShareRegistry();
            ShareLedgerProjection.Rebuild(restored, fromSnapshot);
            Assert.Equal(live, BookFingerprint.Of(fromSnapshot));
        }
    }
}
