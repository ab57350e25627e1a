-- One database per service; each service applies its own migrations at start.
CREATE DATABASE shop_account;
CREATE DATABASE shop_catalog;
CREATE DATABASE shop_order;
