using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

public sealed partial class ExchangeStateMachine
{
    // ================================================================== instrument kinds

    /// <summary>
    /// What an instrument kind supplies to the exchange, so that the books, the order commands and the pipeline never
    /// ask which kind they trade: what backs a sell (checked, then reserved and released), and what a trade settles into
    /// (a lease of GPUs; shares delivered against payment). Buys are the same for every kind: the limit × quantity is
    /// held from the trading account and posted for what was bought.
    /// </summary>
    private interface IInstrumentKind
    {
        /// <summary>Null when <paramref name="owner"/> can offer <paramref name="quantity"/> more on <paramref name="instrument"/> (for
        /// <paramref name="order"/> when it grows an existing sell); otherwise the refusal.</summary>
        CommandResult? CheckSell(long owner, Instrument instrument, long quantity, OrderState? order);

        /// <summary>Reserves (<paramref name="quantity"/> &gt; 0) or releases (&lt; 0) what backs <paramref name="sell"/>, in the running command.</summary>
        void Reserve(OrderState sell, long quantity);

        /// <summary>One trade of the running command: its settlement recorded for the command's chain. Returns the lease made (0 for none) and the notional.</summary>
        long Trade(OrderState buy, OrderState sell, long price, long quantity, out long notional);

        /// <summary>The rest of the running command's chain once its buyers' holds are posted: leases' escrows funded; shares delivered and paid.</summary>
        void Settle();
    }

    private IInstrumentKind KindOf(Instrument instrument) => instrument.Class == InstrumentClass.NodeShares ? _shareKind : _computeKind;

    /// <summary>Compute capacity: a sell is backed by the provider's free GPUs (or, resold, by time of a lease it holds); a trade makes a lease.</summary>
    private sealed class ComputeKind(ExchangeStateMachine sm) : IInstrumentKind
    {
        public CommandResult? CheckSell(long owner, Instrument instrument, long quantity, OrderState? order)
        {
            long gpus = quantity / instrument.Hours;
            if (order is { ResoldLease: not 0 }) return sm.CheckLeaseTime(owner, order.ResoldLease, instrument, gpus);
            if (!sm._providers.ContainsKey(owner)) return Refused(ExchangeError.InsufficientCapacity, RefusalDetail.NotAProvider);
            long free = sm._capacity.FreeGpus(owner, instrument);
            if (free >= gpus) return null;
            long down = order is null ? sm._capacity.DownNode(owner, instrument.Gpu, instrument.Region) : 0;
            return down != 0 ? Refused(ExchangeError.InsufficientCapacity, RefusalDetail.CapacityShortNodeDown, down)
                : Refused(ExchangeError.InsufficientCapacity, RefusalDetail.CapacityShort, free);
        }

        public void Reserve(OrderState sell, long quantity) => sm.CommitSell(sell, (int)(quantity / sell.Instrument.Hours));

        public long Trade(OrderState buy, OrderState sell, long price, long quantity, out long notional)
        {
            Lease lease = sm.CreateLease(buy, sell, price, quantity);
            sm._newLeases.Add((lease, buy.Id));
            notional = lease.Notional;
            return lease.Id;
        }

        public void Settle()
        {
            foreach ((Lease lease, _) in sm._newLeases)
            {
                Account a = ChartOfAccounts.NewAccount(AccountCode.LeaseEscrow, lease.EscrowAccount, Asset.Usd);
                a.UserData64 = (ulong)lease.Id;
                sm._plan.Account(a);
            }
            foreach ((Lease lease, _) in sm._newLeases)
                sm._plan.Transfer(new Transfer
                {
                    Id = sm.NextTransferId(), DebitAccountId = EscrowAccount, CreditAccountId = lease.EscrowAccount, Amount = lease.Notional,
                    Asset = Asset.Usd.Code, Code = LeaseFundingCode, UserData64 = (ulong)lease.Id,
                });
        }
    }

    /// <summary>
    /// A node's shares: a sell is backed by the seller's free shares of the node, held (a pending transfer to the share
    /// escrow) while it rests; a trade delivers the shares from the escrow to the buyer and pays the seller's trading
    /// account from the order escrow, in the command's chain.
    /// </summary>
    private sealed class ShareKind(ExchangeStateMachine sm) : IInstrumentKind
    {
        // The running command's trades: the sells touched (→ shares sold), and each delivery.
        private readonly Dictionary<long, long> _touchedSells = [];
        private readonly List<(long Node, long Seller, long Buyer, long Quantity, long Notional)> _deliveries = [];

        public void Begin()
        {
            _touchedSells.Clear();
            _deliveries.Clear();
        }

        public CommandResult? CheckSell(long owner, Instrument instrument, long quantity, OrderState? order)
        {
            long free = sm._holdings.TryGetValue((owner, instrument.Node), out HoldingState? h) ? h.Free : 0;
            return free >= quantity ? null : Refused(ExchangeError.InsufficientShares, RefusalDetail.SharesShort, free);
        }

        public void Reserve(OrderState sell, long quantity)
        {
            HoldingState h = sm._holdings[(sell.Owner, sell.Instrument.Node)];
            h.Free = checked(h.Free - quantity);
            h.Offered = checked(h.Offered + quantity);
            if (sell.HoldId == 0)
            {
                // A new sell: its shares held at once (a later trade posts from this hold).
                sell.HoldId = sm.NextTransferId();
                sell.HoldAmount = quantity;
                sm._plan.Transfer(ShareHold(sell, quantity));
            }
            else if (quantity > 0)
            {
                // A replace that grows a resting sell: its hold is made again at once for the whole new quantity (as a
                // buy's is), because the replace may take in this same command and a trade posts from the hold.
                sm._plan.Transfer(new Transfer { Id = sm.NextTransferId(), PendingId = sell.HoldId, Flags = TransferFlags.VoidPendingTransfer });
                sell.HoldId = sm.NextTransferId();
                sell.HoldAmount = checked(sell.HoldAmount + quantity);
                sm._plan.Transfer(ShareHold(sell, sell.HoldAmount));
            }
            else _touchedSells.TryAdd(sell.Id, 0); // a release: the hold is made again in Settle, for what rests then
        }

        public long Trade(OrderState buy, OrderState sell, long price, long quantity, out long notional)
        {
            long node = sell.Instrument.Node;
            notional = checked(price * quantity);
            HoldingState seller = sm._holdings[(sell.Owner, node)];
            seller.Offered -= quantity;
            HoldingState buyer = sm.Holding(buy.Owner, node);
            buyer.Free = checked(buyer.Free + quantity);
            _touchedSells[sell.Id] = checked(_touchedSells.GetValueOrDefault(sell.Id) + quantity);
            _deliveries.Add((node, sell.Owner, buy.Owner, quantity, notional));
            sm.RecordShareTrade(node, price, quantity);
            return 0;
        }

        public void Settle()
        {
            foreach ((long orderId, long sold) in _touchedSells)
            {
                // The order may have left the book (filled, cancelled) but is still known until the command ends.
                OrderState o = sm._orders[orderId];
                if (sold > 0) sm._plan.Transfer(new Transfer { Id = sm.NextTransferId(), PendingId = o.HoldId, Amount = sold, Flags = TransferFlags.PostPendingTransfer });
                else sm._plan.Transfer(new Transfer { Id = sm.NextTransferId(), PendingId = o.HoldId, Flags = TransferFlags.VoidPendingTransfer });
                if (o.Remaining > 0)
                {
                    o.HoldId = sm.NextTransferId();
                    o.HoldAmount = o.Remaining;
                    sm._plan.Transfer(ShareHold(o, o.Remaining));
                }
                else
                {
                    o.HoldId = 0;
                    o.HoldAmount = 0;
                }
            }
            foreach ((long node, long seller, long buyer, long quantity, long notional) in _deliveries)
            {
                ShareNodeState shares = sm._shareNodes[node];
                sm._plan.Transfer(new Transfer
                {
                    Id = sm.NextTransferId(), DebitAccountId = shares.Escrow, CreditAccountId = ChartOfAccounts.ShareHolding((ulong)buyer, (ulong)node),
                    Amount = quantity, Asset = shares.Asset, Code = (ushort)TransferCode.ShareTrade, UserData64 = (ulong)seller,
                });
                sm._plan.Transfer(new Transfer
                {
                    Id = sm.NextTransferId(), DebitAccountId = EscrowAccount, CreditAccountId = TradingAccount(seller), Amount = notional,
                    Asset = Asset.Usd.Code, Code = (ushort)TransferCode.SharePayment, UserData64 = (ulong)buyer,
                });
                TraderState t = sm._traders[seller];
                t.Available = checked(t.Available + notional);
            }
            Begin();
        }

        private Transfer ShareHold(OrderState sell, long quantity)
        {
            ShareNodeState shares = sm._shareNodes[sell.Instrument.Node];
            return new Transfer
            {
                Id = sell.HoldId, DebitAccountId = ChartOfAccounts.ShareHolding((ulong)sell.Owner, (ulong)shares.Node), CreditAccountId = shares.Escrow,
                Amount = quantity, Asset = shares.Asset, Code = (ushort)TransferCode.ShareTrade, Flags = TransferFlags.Pending, UserData64 = (ulong)sell.Id,
            };
        }
    }
}
