// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import "./Erc20.sol";
import "./IStablecoin.sol";

/// @title NodeShareToken: one node's shares on chain, paying their holders the node's revenue.
/// @notice Shares are minted by the operator when a holder withdraws them from the ledger (each mintId once) and
/// burned by their holder's deposit back to a ledger account (Deposited, credited by the server like a vault deposit).
///
/// Revenue uses the ledger's fixed point (ComputeGrid.Tokens ShareAccumulator): revenue per share is R / S with S the
/// node's fixed supply (all shares, on chain or not) and R the node's revenue received so far, so the "magnified
/// dividend per share" is R itself, exact. Holder h has earned n_h = R * balance_h + correction_h in units of 1/S
/// micro-USD; a transfer, mint or burn of k shares moves R * k between corrections so that n_h never jumps.
/// entitlement_h = n_h / S (rounded down), withdrawable = entitlement_h - withdrawn_h. These are exactly the ledger's
/// entitlements for the same holdings, so the ledger's bridge holder (owning the on-chain supply) is owed
/// floor(sum n_h / S), which is what distribute() pulls; the sum of the floors falls short of it by less than the
/// number of holders, the carry that stays here, as in the ledger's pool. Nothing is created or lost.
contract NodeShareToken is Erc20 {
    string public name;
    string public symbol;
    uint8 public constant decimals = 0;

    IStablecoin public immutable stablecoin;
    address public immutable operator;
    bytes32 public immutable node;
    /// @notice S: every share the node issued, the denominator of revenue per share.
    uint256 public immutable nodeSupply;

    /// @notice R: the node's revenue (all holders', micro-USD) distributed so far.
    uint256 public revenue;
    /// @notice Stablecoin pulled from the operator for on-chain holders in all: floor(sum n_h / S).
    uint256 public pulled;
    uint256 public claimedTotal;
    mapping(address => int256) private _corrections;
    int256 private _correctionsTotal;
    mapping(address => uint256) public claimed;
    mapping(bytes32 => bool) public minted;

    event Deposited(address indexed holder, bytes32 indexed account, uint256 shares);
    event Distributed(uint256 revenue, uint256 pulled, uint256 revenueTotal);
    event Claimed(address indexed holder, uint256 amount);

    constructor(string memory name_, string memory symbol_, bytes32 node_, uint256 nodeSupply_, IStablecoin stablecoin_, address operator_) {
        require(nodeSupply_ > 0 && nodeSupply_ <= type(uint64).max, "bad supply");
        require(address(stablecoin_) != address(0) && operator_ != address(0), "zero address");
        name = name_;
        symbol = symbol_;
        node = node_;
        nodeSupply = nodeSupply_;
        stablecoin = stablecoin_;
        operator = operator_;
    }

    modifier onlyOperator() {
        require(msg.sender == operator, "only operator");
        _;
    }

    // ---- bridge ----

    /// @notice Shares withdrawn from the ledger; mintId (from the server's outbox) mints at most once.
    function mint(address to, uint256 shares, bytes32 mintId) external onlyOperator {
        require(!minted[mintId], "mint already done");
        require(to != address(0) && shares > 0, "bad mint");
        require(totalSupply + shares <= nodeSupply, "above node supply");
        minted[mintId] = true;
        totalSupply += shares;
        balanceOf[to] += shares;
        _moveCorrection(to, -_earnedBy(shares));
        emit Transfer(address(0), to, shares);
    }

    /// @notice Deposits the caller's shares back to ledger account `account`: they are burned here and credited there.
    /// What they earned so far stays claimable here.
    function deposit(uint256 shares, bytes32 account) external {
        require(shares > 0, "zero deposit");
        require(account != bytes32(0), "no account");
        uint256 balance = balanceOf[msg.sender];
        require(balance >= shares, "balance exceeded");
        unchecked {
            balanceOf[msg.sender] = balance - shares;
        }
        totalSupply -= shares;
        _moveCorrection(msg.sender, _earnedBy(shares));
        emit Transfer(msg.sender, address(0), shares);
        emit Deposited(msg.sender, account, shares);
    }

    // ---- revenue ----

    /// @notice Brings R up to `revenueTotal` micro-USD, the node's whole revenue so far as the ledger counts it, and
    /// pulls from the operator the part now owed to on-chain holders (needs the operator's allowance). A total, not an
    /// increment: the same total sent twice (a resend after a crash, both mined) changes nothing the second time, so R
    /// never passes the ledger's. A total at or below R is a no-op that emits nothing.
    function distribute(uint256 revenueTotal) external onlyOperator {
        if (revenueTotal <= revenue) return;
        require(revenueTotal <= type(uint128).max, "revenue overflow");
        uint256 amount = revenueTotal - revenue;
        revenue = revenueTotal;
        uint256 target = _earnedTotal() / nodeSupply;
        uint256 due = target - pulled;
        pulled = target;
        if (due > 0) require(stablecoin.transferFrom(msg.sender, address(this), due), "transfer failed");
        emit Distributed(amount, due, revenueTotal);
    }

    function accumulativeDividendOf(address holder) public view returns (uint256) {
        return _earned(holder) / nodeSupply;
    }

    function withdrawableDividendOf(address holder) public view returns (uint256) {
        return accumulativeDividendOf(holder) - claimed[holder];
    }

    function claim() external returns (uint256 amount) {
        amount = withdrawableDividendOf(msg.sender);
        if (amount == 0) return 0;
        claimed[msg.sender] += amount;
        claimedTotal += amount;
        require(stablecoin.transfer(msg.sender, amount), "transfer failed");
        emit Claimed(msg.sender, amount);
    }

    /// @notice sum n_h over every holder ever seen, in units of 1/S micro-USD: pulled = earnedTotal() / S, and
    /// pulled minus the holders' entitlements (each floored on its own) is the carry, below the number of holders.
    function earnedTotal() external view returns (uint256) {
        return _earnedTotal();
    }

    // ---- internals ----

    // A transfer moves what the shares earned so far with them, so neither side's n_h jumps.
    function _afterTransfer(address from, address to, uint256 value) internal override {
        int256 moved = _earnedBy(value);
        _corrections[from] += moved;
        _corrections[to] -= moved;
    }

    // R * shares as a signed correction; R < 2^128 and shares <= S < 2^64 keep it far inside int256.
    function _earnedBy(uint256 shares) private view returns (int256) {
        return int256(revenue * shares);
    }

    function _moveCorrection(address holder, int256 delta) private {
        _corrections[holder] += delta;
        _correctionsTotal += delta;
    }

    function _earned(address holder) private view returns (uint256) {
        return uint256(int256(revenue * balanceOf[holder]) + _corrections[holder]);
    }

    function _earnedTotal() private view returns (uint256) {
        return uint256(int256(revenue * totalSupply) + _correctionsTotal);
    }
}
