// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import "./IStablecoin.sol";

/// @title Vault: stablecoin between the chain and ComputeGrid's ledger.
/// @notice A deposit pulls the stablecoin in and emits Deposited(depositor, account, amount); the server credits the
/// ledger account `account` once per (transaction hash, log index) after N confirmations. A withdrawal is sent only
/// by the operator (the server), after it debited the ledger, and each withdrawalId pays at most once, so a retry
/// from the server's outbox can never pay twice.
contract Vault {
    IStablecoin public immutable token;
    address public immutable operator;

    mapping(bytes32 => bool) public withdrawn;

    event Deposited(address indexed depositor, bytes32 indexed account, uint256 amount);
    event Withdrawn(bytes32 indexed withdrawalId, address indexed to, uint256 amount);

    constructor(IStablecoin token_, address operator_) {
        require(address(token_) != address(0) && operator_ != address(0), "zero address");
        token = token_;
        operator = operator_;
    }

    function deposit(uint256 amount, bytes32 account) external {
        _deposit(amount, account);
    }

    /// @notice Deposit in one transaction: an EIP-2612 permit for this vault, then the deposit.
    function depositWithPermit(uint256 amount, bytes32 account, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
    {
        token.permit(msg.sender, address(this), amount, deadline, v, r, s);
        _deposit(amount, account);
    }

    function withdraw(address to, uint256 amount, bytes32 withdrawalId) external {
        require(msg.sender == operator, "only operator");
        require(!withdrawn[withdrawalId], "withdrawal already paid");
        require(to != address(0) && amount > 0, "bad withdrawal");
        withdrawn[withdrawalId] = true;
        require(token.transfer(to, amount), "transfer failed");
        emit Withdrawn(withdrawalId, to, amount);
    }

    function _deposit(uint256 amount, bytes32 account) private {
        require(amount > 0, "zero deposit");
        require(account != bytes32(0), "no account");
        require(token.transferFrom(msg.sender, address(this), amount), "transfer failed");
        emit Deposited(msg.sender, account, amount);
    }
}
