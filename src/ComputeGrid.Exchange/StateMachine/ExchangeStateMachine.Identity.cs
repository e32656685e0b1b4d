namespace ComputeGrid.Exchange.StateMachine;

public sealed partial class ExchangeStateMachine
{
    /// <summary>The time of the last command applied (Unix ns).</summary>
    public long LastTime => _lastTime;

    /// <summary>The qualifier every id of this exchange carries.</summary>
    public ulong Epoch => _options.Epoch;

    /// <summary>The machine's settings.</summary>
    public StateMachineOptions Options => _options;
}
