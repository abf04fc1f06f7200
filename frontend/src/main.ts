import "./style.css";
import { startApp } from "./app";
import { loadConfig } from "./config";

startApp(loadConfig(window.__DRYDOCK_CONFIG__));
