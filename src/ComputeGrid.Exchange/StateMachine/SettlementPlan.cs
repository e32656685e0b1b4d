using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>
/// The ledger effects of a batch of commands, in command order: accounts to create, then transfers, each command's
/// transfers one linked chain (split into several chains only past <see cref="LedgerLimits.BatchEventsMax"/>). Ids
/// derive from the command's sequence number, so the same journal always plans the same transfers. Reused batch to
/// batch (no allocation once grown).
/// </summary>
public sealed class SettlementPlan
{
    private Account[] _accounts = new Account[16];
    private Transfer[] _transfers = new Transfer[256];
    private CommandSpan[] _commands = new CommandSpan[64];
    private (int Transfer, ulong Seq)[] _awaiting = new (int, ulong)[8];
    private int _accountCount, _transferCount, _commandCount, _awaitingCount;
    private int _chainStart = -1;

    /// <summary>Where one command's accounts and transfers are in the plan.</summary>
    public readonly record struct CommandSpan(ulong Seq, int FirstAccount, int Accounts, int FirstTransfer, int Transfers);

    public ReadOnlySpan<Account> Accounts => _accounts.AsSpan(0, _accountCount);
    public ReadOnlySpan<Transfer> Transfers => _transfers.AsSpan(0, _transferCount);
    public ReadOnlySpan<CommandSpan> Commands => _commands.AsSpan(0, _commandCount);

    /// <summary>Transfers whose result the state machine must be told (<see cref="ExchangeCommandKind.TransferSettled"/>), with their command.</summary>
    public ReadOnlySpan<(int Transfer, ulong Seq)> Awaiting => _awaiting.AsSpan(0, _awaitingCount);

    /// <summary>Empties the plan for the next batch.</summary>
    public void Clear()
    {
        _accountCount = _transferCount = _commandCount = _awaitingCount = 0;
        _chainStart = -1;
    }

    internal void BeginCommand(ulong seq)
    {
        if (_commandCount == _commands.Length) Array.Resize(ref _commands, _commands.Length * 2);
        _commands[_commandCount++] = new CommandSpan(seq, _accountCount, 0, _transferCount, 0);
        _chainStart = _transferCount;
    }

    internal void EndCommand()
    {
        ref CommandSpan c = ref _commands[_commandCount - 1];
        // The command's chain ends unlinked.
        if (_transferCount > _chainStart) _transfers[_transferCount - 1].Flags &= ~TransferFlags.Linked;
        c = c with { Accounts = _accountCount - c.FirstAccount, Transfers = _transferCount - c.FirstTransfer };
        _chainStart = -1;
    }

    /// <summary>Drops what the running command planned (it was refused after planning part of its effects).</summary>
    internal void AbandonCommand()
    {
        CommandSpan c = _commands[--_commandCount];
        _accountCount = c.FirstAccount;
        _transferCount = c.FirstTransfer;
        while (_awaitingCount > 0 && _awaiting[_awaitingCount - 1].Transfer >= c.FirstTransfer) _awaitingCount--;
        _chainStart = -1;
    }

    /// <summary>Drops everything command <paramref name="seq"/> planned (its spans are the last): it threw part-way.</summary>
    internal void AbandonAll(ulong seq)
    {
        while (_commandCount > 0 && _commands[_commandCount - 1].Seq == seq) AbandonCommand();
    }

    internal void Account(in Account a)
    {
        if (_accountCount == _accounts.Length) Array.Resize(ref _accounts, _accounts.Length * 2);
        _accounts[_accountCount++] = a;
    }

    /// <summary>Adds a transfer to the running command's chain (linked to the next; the chain's last is unlinked at its end).</summary>
    internal int Transfer(in Transfer t)
    {
        if (_transferCount == _transfers.Length) Array.Resize(ref _transfers, _transfers.Length * 2);
        int i = _transferCount++;
        _transfers[i] = t;
        _transfers[i].Flags |= TransferFlags.Linked;
        // A chain may not exceed a ledger batch: close it and start another.
        if (i - _chainStart + 1 == LedgerLimits.BatchEventsMax)
        {
            _transfers[i].Flags &= ~TransferFlags.Linked;
            _chainStart = i + 1;
        }
        return i;
    }

    /// <summary>Adds a transfer that stands alone (not linked to the command's others) and whose result the state machine awaits.</summary>
    internal void AwaitedTransfer(in Transfer t, ulong seq)
    {
        // Close the running chain before it, and start a new one after it.
        if (_transferCount > _chainStart) _transfers[_transferCount - 1].Flags &= ~TransferFlags.Linked;
        if (_transferCount == _transfers.Length) Array.Resize(ref _transfers, _transfers.Length * 2);
        int i = _transferCount++;
        _transfers[i] = t;
        _transfers[i].Flags &= ~TransferFlags.Linked;
        _chainStart = _transferCount;
        if (_awaitingCount == _awaiting.Length) Array.Resize(ref _awaiting, _awaiting.Length * 2);
        _awaiting[_awaitingCount++] = (i, seq);
    }
}
