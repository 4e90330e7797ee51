import './base.css';
import './permission.css';
import './cells.css';
import './toolcard.css';
import './undo.css';
