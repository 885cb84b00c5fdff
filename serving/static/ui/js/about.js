import { ready } from "./app.js";

ready();
